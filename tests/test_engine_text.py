"""Each text-perturbation kind does its one job, is tagged, and never returns the original;
the command turns a pair shard into valid text-only sets."""
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from hn_data import text_negatives as tn

CASES = {  # kind: (caption, a check of the negative)
    "number": ("a photo of two dogs",
               lambda n: n.split()[3] in tn.NUMBERS and n.split()[3] != "two" and n.endswith("dogs")),
    "spatial": ("the cat is to the left of the chair", lambda n: n == "the cat is to the right of the chair"),
    "size": ("a small dog on the grass", lambda n: n == "a large dog on the grass"),
    "relation": ("a man riding a horse",
                 lambda n: "riding" not in n and n.startswith("a man ") and n.endswith(" a horse")),
    "swap_attribute": ("a red car and a blue bike", lambda n: n == "a blue car and a red bike"),
    "swap_object": ("a dog on a sofa", lambda n: n == "a sofa on a dog"),
    "negation": ("there is a dog on the sofa", lambda n: n == "there is no dog on the sofa"),
    "shuffle": ("a dog on a sofa", lambda n: sorted(n.split()) == sorted("a dog on a sofa".split())),
}


@pytest.mark.parametrize("kind", tn.KINDS)
def test_each_kind(kind):
    caption, ok = CASES[kind]
    for seed in range(5):
        neg = tn.PERTURB[kind](caption, np.random.default_rng(seed))
        assert neg is not None and neg != caption and ok(neg), (kind, neg)
    assert kind in {k for k, _ in tn.perturb(caption, np.random.default_rng(0))}


def test_number_plural_agreement_and_inapplicable_kinds():
    rng = np.random.default_rng(0)
    outs = {tn.number("a photo of one box", np.random.default_rng(s)) for s in range(10)}
    assert all(o.endswith("boxes") for o in outs)
    assert tn.number("a dog", rng) is None and tn.swap_attribute("a red car", rng) is None
    assert tn.shuffle("dog dog", rng) is None
    negs = tn.perturb("a red car and a blue bike on the left", rng)
    texts = [t for _, t in negs]
    assert len(texts) == len(set(texts)) and "a red car and a blue bike on the left" not in texts


def test_pairs_to_text_only_sets(tmp_path):
    from hn_data.set_format import TarWriter, validate_record, write_pair, write_stats
    shard = tmp_path / "pairs-000000.tar"
    w = TarWriter(shard)
    caps = ["a photo of two red apples on the left", "a cat", "a small dog riding a horse"]
    for i, c in enumerate(caps):
        write_pair(w, f"{i:09d}", Image.new("RGB", (8, 8), (i * 40, 0, 0)), c)
    w.close()
    write_stats(shard, 3)
    tn.main([f"pairs={shard}", f"out={tmp_path / 'text'}", "negatives=3"])
    with tarfile.open(tmp_path / "text" / "sets-000000.tar") as tar:
        recs = [json.loads(tar.extractfile(m).read()) for m in tar.getmembers() if m.name.endswith(".json")]
        assert sum(m.name.endswith(".0.jpg") for m in tar.getmembers()) == len(recs) == 3
    for r in recs:
        validate_record(r, 1, "test")
        assert r["image_caption"] == [0] and r["captions"][0] in caps
        assert len(r["meta"]["negative_kinds"]) == len(r["captions"]) - 1 >= 1
        assert r["captions"][0] not in r["captions"][1:]
    big = next(r for r in recs if r["captions"][0] == caps[0])
    assert len(big["captions"]) == 4 and "shuffle" not in big["meta"]["negative_kinds"]


def test_a_damaged_pair_member_is_skipped_and_counted(tmp_path):
    # tarfile stopped reading the shard at a damaged header, silently dropping the pairs after it
    from hn_data.set_format import TarWriter, write_pair
    shard = tmp_path / "pairs-000000.tar"
    w = TarWriter(shard)
    for i, c in enumerate(["two red apples", "a small dog", "a big cat"]):
        write_pair(w, f"{i:09d}", Image.new("RGB", (8, 8), (i * 40, 0, 0)), c)
    w.close()
    data = bytearray(shard.read_bytes())
    with tarfile.open(shard) as t:
        first_json = next(m for m in t.getmembers() if m.name.endswith(".json"))
    data[first_json.offset + 148:first_json.offset + 156] = b"0000000\0"  # sample 0's json header
    shard.write_bytes(bytes(data))
    tn.main([f"pairs={shard}", f"out={tmp_path / 'text'}", "negatives=2"])
    stats = json.loads((tmp_path / "text" / "summary.json").read_text())
    assert stats["damaged_members"] == 1 and stats["sets"] == 3
