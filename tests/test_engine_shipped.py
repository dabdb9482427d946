"""The engine's labels hold on the files it writes, not only on its masks: count sets are
re-counted here from the written SPEC-layout JPEGs and PNG shards alone (connected components
of the pixels that differ from the set's shared background), and a set whose decoded file
measures another label is rejected and counted by reason."""
import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from hn_data.backgrounds import background as procedural_background
from hn_data.engine import Config, read_sets, run
from hn_data.rules import NUMBERS

# an independent reading of the files: the pixels that differ from the set's background
# (re-drawn from the seed its record stores), then scipy's connected components
DIFF = 24


def blobs(images, bg_seed, size=64):
    background = np.asarray(procedural_background(size, bg_seed)).astype(int)
    diffs = [np.abs(np.asarray(im.convert("RGB")).astype(int) - background).max(axis=2) for im in images]
    return [ndimage.label(d > DIFF)[1] for d in diffs]


def spec_count_sets(out):
    """[(bg_seed, [(image file, number its caption says)])] of the written SPEC layout, whose
    set n is the n-th held-out set (images/<n>_<member>.jpg)."""
    root = out / "spec_heldout" / "count"
    held = [cs for p in sorted((out / "heldout_sets").glob("sets-*.tar")) for _, cs in read_sets(p)]
    members = {}
    for rec in json.loads((root / "image2text.json").read_text()):
        n = int(rec["query"].split("/")[1].split("_")[0])
        members.setdefault(n, []).append((root / rec["query"], number_in(rec["keys"][rec["label"]])))
    assert sorted(members) == list(range(len(held)))
    return [(held[n].meta["bg_seed"], sorted(members[n])) for n in sorted(members)]


def number_in(caption):
    return NUMBERS.index(caption.split()[3]) + 1  # "a photo of <number> <objects>"


@pytest.fixture(scope="module")
def count_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("engine_count")
    summary = run(Config(seed=11, subsets=["count"]), out, train_per_subset=20, heldout_per_subset=40,
                  train_shards=1, heldout_shards=1)
    return out, summary


def test_counts_hold_on_the_written_jpegs_and_pngs(count_run):
    out, summary = count_run
    sets = spec_count_sets(out)
    assert len(sets) == 40
    checked, wrong = 0, []
    for bg_seed, members in sets:
        got = blobs([Image.open(f) for f, _ in members], bg_seed)
        for (f, n), k in zip(members, got):
            checked += 1
            if k != n:
                wrong.append((f.name, n, k))
    assert checked == 360 and not wrong, wrong
    # the training shards (PNG) too
    train = [cs for _, cs in read_sets(out / "sets" / "sets-000000.tar")]
    assert len(train) == 20
    for cs in train:
        assert blobs(cs.images, cs.meta["bg_seed"]) == [number_in(c) for c in cs.captions]


def test_spec_jpegs_keep_full_chroma_resolution(count_run):
    out, _ = count_run
    img = next((out / "spec_heldout" / "count" / "images").glob("*.jpg"))
    from PIL import JpegImagePlugin
    assert JpegImagePlugin.get_sampling(Image.open(img)) == 0  # 4:4:4


def test_sets_the_old_encoding_would_break_are_rejected_and_counted(tmp_path, monkeypatch):
    # what the engine shipped before: instances 1 px apart, JPEGs with 4:2:0 chroma. The masks
    # still agree with every label; the decoded JPEGs of most count sets do not.
    from hn_data import concepts, spec_layout
    monkeypatch.setattr(concepts, "MIN_GAP", 1)
    monkeypatch.setitem(spec_layout.JPEG_OPTIONS, "subsampling", 2)
    summary = run(Config(seed=5, subsets=["count"]), tmp_path, train_per_subset=3, heldout_per_subset=6,
                  train_shards=1, heldout_shards=1)
    assert summary["rejected_per_reason"].get("jpeg", 0) >= 3, summary
    assert summary["rejected_sets"] == sum(summary["rejected_per_reason"].values())
    stats = json.loads((tmp_path / "heldout_sets" / "sets-000000_stats.json").read_text())
    assert stats["rejected_per_reason"].get("jpeg", 0) > 0
    # and what was written holds, even in that encoding
    for bg_seed, members in spec_count_sets(tmp_path):
        assert blobs([Image.open(f) for f, _ in members], bg_seed) == [n for _, n in members]
