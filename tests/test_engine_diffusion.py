"""The diffusion backend end to end on tiny RANDOM-WEIGHT models built from diffusers' and
transformers' config classes (PLUMBING ONLY: the images are noise). Every stage runs through
the same loading and calling code a real SDXL / OWL-ViT / SAM checkpoint would use."""
import importlib.util
import json

import numpy as np
import pytest

from hn_data.coco import COCO_CLASSES
from hn_data.engine import Config, read_sets, run

# find_spec, not an import: collecting this file must not cost diffusers' import time
MISSING = [m for m in ("diffusers", "transformers") if importlib.util.find_spec(m) is None]


@pytest.mark.slow
@pytest.mark.skipif(bool(MISSING), reason=f"not installed: {MISSING}; `pip install -e '.[diffusion]'`")
def test_diffusion_backend_end_to_end(tmp_path):
    from hn_data.tiny_diffusion import build_all
    opts = build_all(tmp_path / "models")
    opts.update(steps=1, halo=2, threads=1, library_dir=str(tmp_path / "library"),
                classes=["dog", "traffic light"])
    cfg = Config(backend="diffusion", backend_options=opts, size=64, seed=0,
                 subsets=["absolute_size", "existence"], instances_per_class=4)
    out = tmp_path / "out"
    summary = run(cfg, out, train_per_subset=1, heldout_per_subset=1, train_shards=1, heldout_shards=1)
    assert summary["train_sets"] == 2 and summary["heldout_sets"] == 2
    sets = {split: [cs for _, cs in read_sets(out / folder / "sets-000000.tar")]
            for split, folder in (("train", "sets"), ("heldout", "heldout_sets"))}
    for split, group in sets.items():
        for cs in group:
            assert cs.meta["generator"] == "diffusion(plumbing-only: random weights)"
            assert set(cs.objects) <= set(COCO_CLASSES) and cs.meta["split"] == split
            arrs = [np.asarray(im) for im in cs.images]
            for i in range(len(arrs)):           # one background: identical outside the regions
                for j in range(i + 1, len(arrs)):
                    outside = np.ones(arrs[0].shape[:2], bool)
                    for x0, y0, x1, y1 in (cs.meta["regions"][i], cs.meta["regions"][j]):
                        outside[y0:y1, x0:x1] = False
                    assert (arrs[i][outside] == arrs[j][outside]).all()
    inst = lambda group: {tuple(x) for cs in group for x in cs.meta["instances"]}
    assert not inst(sets["train"]) & inst(sets["heldout"])
    assert len(list((tmp_path / "library").rglob("*.png"))) >= 2   # the cut-out library, cached
    for s in ("absolute_size", "existence"):
        i2t = json.loads((out / "spec_heldout" / s / "image2text.json").read_text())
        assert len(i2t) == {"absolute_size": 3, "existence": 2}[s]
