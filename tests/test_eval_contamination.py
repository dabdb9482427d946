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
    """A smooth random picture (dHash, like photos, has structure to find)."""
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
        ("s0.json", json.dumps({"subset": "count", "captions": [cap_b, "two dogs"], "image_caption": [0, 1]}).encode()),
        ("s0.0.png", _bytes(photo(rng))), ("s0.1.png", _bytes(photo(rng))),
    ])
    conf = tmp_path / "eval.yaml"
    conf.write_text(yaml.safe_dump({"benchmarks": ["sugarcrepe"],
                                    "suites": {"sugarcrepe": {"root": FIXTURES, "image_root": str(images)}}}))
    out = tmp_path / "report.json"
    rep = cc.main(["--train", str(tmp_path / "pairs-{00000..00000}.tar"), "--train", str(tmp_path / "sets-00000.tar"),
                   "--eval", str(conf), "--out", str(out)])
    r = rep["benchmarks"]["sugarcrepe"]
    assert r["images"] == len(files) and r["image_matches"] == 1  # the leak, and none of the other photos
    assert r["text_matches"] == 2 and rep["training"]["unreadable"] == 1
    shown = [e for e in r["examples"] if "distance" in e]
    assert shown[0]["benchmark"].endswith(files[0]) and shown[0]["training"].endswith(":000.jpg")
    assert json.loads(out.read_text())["benchmarks"]["sugarcrepe"]["text_matches"] == 2
