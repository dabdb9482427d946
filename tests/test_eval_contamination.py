"""The contamination check finds a benchmark image re-encoded and resized inside a training
pair shard, benchmark captions in pair and set shards up to case and punctuation, and nothing
else; its Hamming index equals a brute-force search."""
import io
import json
import os
import random
import tarfile

import numpy as np
import yaml
from PIL import Image

from train.eval import contamination as cc

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "sugarcrepe")


def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _bytes(img, fmt="PNG", **kw):
    b = io.BytesIO()
    img.save(b, format=fmt, **kw)
    return b.getvalue()


def photo(rng, size=64):
    """A smooth random picture (a hash, like photos, has structure to find)."""
    small = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.BICUBIC)


def test_hash_index_equals_brute_force():
    rng = random.Random(0)
    hashes = [rng.getrandbits(64) for _ in range(400)]
    idx = cc.HashIndex(4)
    for n, h in enumerate(hashes):
        idx.add(h, n)
    for _ in range(200):
        q = rng.choice(hashes) ^ sum(1 << b for b in rng.sample(range(64), rng.randint(0, 6)))
        best = min(bin(h ^ q).count("1") for h in hashes)
        hit = idx.near(q)
        assert (hit is None) == (best > 4) and (hit is None or hit[0] == best)


def test_reports_overlap_between_training_shards_and_a_benchmark(tmp_path):
    rng = np.random.default_rng(0)
    images = tmp_path / "val2017"
    images.mkdir()
    recs = {n: json.load(open(os.path.join(FIXTURES, f"{n}.json"))) for n in ("add_att", "swap_att")}
    files = sorted({r["filename"] for d in recs.values() for r in d.values()})
    for f in files:
        photo(rng).save(images / f, format="PNG")
    leaked = Image.open(images / files[0]).convert("RGB").resize((96, 96))
    cap_a = recs["add_att"]["1"]["caption"].upper().replace(".", " !")    # same words, other case/punctuation
    cap_b = recs["swap_att"]["2"]["caption"]
    _tar(tmp_path / "pairs-00000.tar", [
        ("000.jpg", _bytes(leaked, "JPEG", quality=80)), ("000.txt", b"a photo of something else"),
        ("001.jpg", _bytes(photo(rng), "JPEG")), ("001.txt", cap_a.encode()),
        ("002.jpg", b"not an image"), ("002.txt", b"broken sample"),
    ])
    _tar(tmp_path / "sets-00000.tar", [
        ("s0.json",
         json.dumps({"subset": "count", "captions": [cap_b, "two dogs"], "image_caption": [0, 1]}).encode()),
        ("s0.0.png", _bytes(photo(rng))), ("s0.1.png", _bytes(photo(rng))),
    ])
    conf = tmp_path / "eval.yaml"
    conf.write_text(yaml.safe_dump({"benchmarks": ["sugarcrepe"],
                                    "suites": {"sugarcrepe": {"root": FIXTURES, "image_root": str(images)}}}))
    out = tmp_path / "report.json"
    rep = cc.main([f"train=[{tmp_path / 'pairs-{00000..00000}.tar'},{tmp_path / 'sets-00000.tar'}]",
                   f"eval={conf}", f"out={out}"])
    r = rep["benchmarks"]["sugarcrepe"]
    assert r["images"] == len(files) and r["image_matches"] == 1  # the leak, and none of the other photos
    assert r["text_matches"] == 2 and rep["training"]["unreadable"] == 1
    shown = [e for e in r["examples"] if "distance" in e]
    assert shown[0]["benchmark"].endswith(files[0]) and shown[0]["training"].endswith(":000.jpg")
    assert json.loads(out.read_text())["benchmarks"]["sugarcrepe"]["text_matches"] == 2


def test_a_hash_match_with_different_pixels_is_not_a_match(tmp_path):
    """Among many flat, one-object images a different image can fall within the hash radius;
    the pixel check must reject what the hash alone would report. An image and its blend with
    another picture: near in hash (the radius is set to reach it), far in pixels."""
    rng = np.random.default_rng(2)
    a, c = (np.asarray(photo(rng), dtype=np.float64) for _ in range(2))
    bench = Image.fromarray(a.astype(np.uint8))
    other = Image.fromarray((0.75 * a + 0.25 * c).astype(np.uint8))
    radius = bin(cc.phash(bench) ^ cc.phash(other)).count("1")
    assert 0 < radius < 16
    _tar(tmp_path / "train-0.tar", [("t.png", _bytes(other)), ("t.txt", b"x")])
    images, _, _ = cc.index_training([str(tmp_path / "train-0.tar")], radius)
    h = cc.phash(bench)
    assert images.near(h) is not None                       # the hash alone says "same"
    assert cc.confirm(images, bench, h, 4.0) is None         # the pixels say no
    assert cc.confirm(images, bench, h, 255.0) is not None   # (and that check is what decided)


def test_benchmarks_holding_images_in_memory(tmp_path):
    """Pair-shard retrieval keeps decoded images, not paths: they are hashed too."""
    rng = np.random.default_rng(1)
    shared = photo(rng)
    _tar(tmp_path / "bench-0.tar", [("a.png", _bytes(shared)), ("a.txt", b"A red kite."),
                                    ("b.png", _bytes(photo(rng))), ("b.txt", b"two dogs")])
    _tar(tmp_path / "train-0.tar", [("x.jpg", _bytes(shared, "JPEG", quality=90)), ("x.txt", b"a red kite")])
    conf = tmp_path / "eval.yaml"
    conf.write_text(yaml.safe_dump({"benchmarks": ["retrieval"],
                                    "suites": {"retrieval": {"urls": str(tmp_path / "bench-0.tar")}}}))
    r = cc.main([f"train=[{tmp_path / 'train-0.tar'}]", f"eval={conf}"])["benchmarks"]["retrieval"]
    assert (r["images"], r["image_matches"], r["texts"], r["text_matches"]) == (2, 1, 2, 1)
