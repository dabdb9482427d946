"""The SPEC evaluator agrees exactly with an independent computation on a real (tiny, random)
open_clip model, on data written by the real engine in the official layout."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def independent_spec(model, tokenizer, preprocess, root):
    """Plain per-query loops over the JSON files: one image and its K captions at a time."""
    out = {}
    for folder in sorted(p for p in Path(root).iterdir() if (p / "image2text.json").is_file()):
        for name, key in (("image2text", "i2t"), ("text2image", "t2i")):
            right = []
            for it in json.loads((folder / f"{name}.json").read_text()):
                with torch.no_grad():
                    if key == "i2t":
                        image = preprocess(Image.open(folder / it["query"]).convert("RGB"))[None]
                        q = model.encode_image(image, normalize=True)
                        c = model.encode_text(tokenizer(it["keys"]), normalize=True)
                    else:
                        q = model.encode_text(tokenizer([it["query"]]), normalize=True)
                        c = model.encode_image(torch.stack([preprocess(Image.open(folder / k).convert("RGB"))
                                                            for k in it["keys"]]), normalize=True)
                s = (c @ q[0]).numpy()
                # strict: the label's score above every other (np.argmax would take the first of a tie)
                right.append(bool(np.all(np.delete(s, it["label"]) < s[it["label"]])))
            out[f"{folder.name}/{key}"] = 100.0 * sum(right) / len(right)
    return out


@pytest.mark.slow
def test_spec_matches_independent_computation(tmp_path):
    from hn_data.concepts import build
    from hn_data.spec_layout import write_spec
    from train import models
    from train.eval.contract import run_suite
    from train.eval.spec import SpecEvaluator

    rng = np.random.default_rng(0)
    sets, seed = [], 10
    # three subsets cover K = 3, 4 and 2; one set each keeps this test short
    for subset in ("absolute_size", "relative_spatial", "existence"):
        while sum(cs.subset == subset for cs in sets) < 1:
            seed += 1
            cs = build(subset, rng, 64, seed)
            if cs is not None:
                sets.append(cs)
    write_spec(tmp_path, sets)
    torch.manual_seed(0)
    model, _, preprocess, tokenizer = models.create("hnclip-tiny")
    model.eval()
    ours = run_suite(SpecEvaluator(tmp_path, batch_size=7), model, tokenizer, preprocess).metrics
    ref = independent_spec(model, tokenizer, preprocess, tmp_path)
    assert set(ref) <= set(ours)
    assert {k: ours[k] for k in ref} == ref
    for d in ("i2t", "t2i"):
        vals = [v for k, v in ref.items() if k.endswith(d)]
        assert ours[f"mean/{d}"] == pytest.approx(sum(vals) / len(vals), abs=1e-12)
