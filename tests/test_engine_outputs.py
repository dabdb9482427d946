"""Engine outputs: one background per set (pixel-identical outside object regions, checked on
the lossless PNG shards and on raw arrays), train/held-out disjointness, determinism by seed
(independent of --workers), resume without duplicates, the official SPEC layout."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from hn_data.engine import Config, backend_for, make_set, read_sets, run

PER_SUBSET = dict(train_per_subset=2, heldout_per_subset=1, train_shards=2, heldout_shards=1)


def digest(root: Path):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "_stats" not in p.name}


@pytest.fixture(scope="module")
def engine_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("engine")
    summary = run(Config(seed=3), out, **PER_SUBSET)
    return out, summary


def all_sets(folder):
    return [cs for p in sorted(folder.glob("sets-*.tar")) for _, cs in read_sets(p)]


def test_members_share_one_background_in_png_shards(engine_out):
    out, summary = engine_out
    sets = all_sets(out / "sets") + all_sets(out / "heldout_sets")
    assert len(sets) == summary["train_sets"] + summary["heldout_sets"] == 18
    compared = 0
    for cs in sets:
        arrs = [np.asarray(im) for im in cs.images]
        for i in range(len(arrs)):
            for j in range(i + 1, len(arrs)):
                outside = np.ones(arrs[0].shape[:2], bool)
                for x0, y0, x1, y1 in (cs.meta["regions"][i], cs.meta["regions"][j]):
                    outside[y0:y1, x0:x1] = False
                assert (arrs[i][outside] == arrs[j][outside]).all(), f"background differs in {cs.subset}"
                assert (arrs[i] != arrs[j]).any(), "members must differ inside the regions"
                compared += int(outside.sum())
    assert compared > 0


def test_pixels_outside_object_masks_equal_the_set_background():
    cfg = Config(seed=5)
    for i in range(6):  # one set per subset
        cs, _ = make_set(cfg, "train", i)
        bg = np.asarray(backend_for(cfg).background(cfg.size, cs.meta["bg_seed"]))
        for img, region in zip(cs.images, cs.regions):
            a = np.asarray(img)
            assert (a[~region] == bg[~region]).all()
            assert (a[region] != bg[region]).any()


def test_train_and_heldout_are_disjoint(engine_out):
    out, _ = engine_out
    train, held = all_sets(out / "sets"), all_sets(out / "heldout_sets")
    inst = lambda sets: {tuple(x) for cs in sets for x in cs.meta["instances"]}
    seeds = lambda sets: {cs.meta["bg_seed"] for cs in sets}
    assert inst(train) and inst(held) and not inst(train) & inst(held)
    assert not seeds(train) & seeds(held)
    assert {cs.meta["split"] for cs in train} == {"train"}
    assert {cs.meta["split"] for cs in held} == {"heldout"}
    # and by construction for any number of sets: parity of ids and seeds encodes the split
    cfg = Config(seed=3)
    for i in range(12):
        a, b = make_set(cfg, "train", i)[0], make_set(cfg, "heldout", i)[0]
        assert a.meta["bg_seed"] % 2 == 0 and b.meta["bg_seed"] % 2 == 1
        assert all(n % 2 == 0 for _,
                   n in a.meta["instances"]) and all(n % 2 == 1 for _, n in b.meta["instances"])


def test_spec_layout(engine_out):
    out, _ = engine_out
    root = out / "spec_heldout"
    subsets = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert subsets == sorted(["absolute_size", "relative_size", "absolute_spatial", "relative_spatial",
                              "existence", "count"])
    for s in subsets:
        i2t = json.loads((root / s / "image2text.json").read_text())
        t2i = json.loads((root / s / "text2image.json").read_text())
        for q in i2t:
            assert (root / s / q["query"]).is_file() and 0 <= q["label"] < len(q["keys"])
        caption_of = {q["query"]: q["keys"][q["label"]] for q in i2t}
        for q in t2i:
            assert all((root / s / k).is_file() for k in q["keys"])
            assert caption_of[q["keys"][q["label"]]] == q["query"]


@pytest.mark.slow
def test_deterministic_by_seed_any_workers_and_resumable(engine_out, tmp_path):
    out, _ = engine_out
    ref = digest(out)
    run(Config(seed=3), tmp_path / "par", workers=2, **PER_SUBSET)
    assert digest(tmp_path / "par") == ref
    # a crash that lost one shard: the rerun rewrites only that shard, identical bytes, no duplicates
    victim = tmp_path / "par" / "sets" / "sets-000001.tar"
    victim.unlink()
    victim.with_suffix(".tar.tmp").write_bytes(b"half-written by a crashed run")
    keep = (tmp_path / "par" / "sets" / "sets-000000.tar").stat().st_mtime_ns
    s = run(Config(seed=3), tmp_path / "par", **PER_SUBSET)
    assert digest(tmp_path / "par") == ref and s["train_sets"] == 12
    assert (tmp_path / "par" / "sets" / "sets-000000.tar").stat().st_mtime_ns == keep
    keys = [k for p in sorted((tmp_path / "par" / "sets").glob("*.tar")) for k, _ in read_sets(p)]
    assert len(keys) == len(set(keys)) == 12
    assert not list((tmp_path / "par").rglob("*.tmp"))
    run(Config(seed=4), tmp_path / "other", **PER_SUBSET)
    assert digest(tmp_path / "other") != ref


def test_make_default_layout(tiny_data):
    """The names `make run` and conf/data/default.yaml rely on."""
    for s in range(8):
        assert (tiny_data / "pairs" / f"pairs-{s:06d}.tar").is_file()
        assert (tiny_data / "sets" / f"sets-{s:06d}.tar").is_file()
    summary = json.loads((tiny_data / "summary.json").read_text())
    assert summary["train_sets"] == 48 and summary["heldout_sets"] == 24 and summary["pairs"] == 256
    assert (tiny_data / ".complete").is_file()
    assert sum(1 for p in (tiny_data / "spec_heldout").iterdir() if (p / "image2text.json").is_file()) == 6
