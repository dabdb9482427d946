"""img2dataset itself (PyPI 1.47.0, in its own venv) downloads images from an HTTP server on
loopback into real LAION-style shards, and our pipeline reads them: every successful row
exactly once per epoch, with the model's own preprocessing and tokenizer, and one damaged
member header in such a shard costs one sample."""
import json
import os
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import img2dataset_env  # noqa: E402

from data_lib import corrupt_header  # noqa: E402
from train.data import shards as S  # noqa: E402
from train.data.samples import raw_samples  # noqa: E402
from train.data.steps import StepSpec, StreamSpec, make_loader  # noqa: E402


@pytest.fixture(scope="module")
def img2dataset():
    try:
        return img2dataset_env.ensure()
    except img2dataset_env.Unavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def server(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        h, w = int(rng.integers(20, 90)), int(rng.integers(20, 90))
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(www / f"img{i}.jpg")
    (www / "broken.jpg").write_bytes(b"this is not an image")
    # -u: the "Serving HTTP on ... port N" line must not sit in a pipe buffer
    proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                             "--directory", str(www)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
    try:
        port = int(proc.stdout.readline().split(" port ")[1].split()[0])
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
def test_img2dataset_shards_are_read_by_our_pipeline(tmp_path, img2dataset, server):
    import open_clip
    rows = [(f"{server}/img{i}.jpg", f"a random picture number {i}") for i in range(10)]
    rows += [(f"{server}/broken.jpg", "undecodable"), (f"{server}/missing.jpg", "a 404")]
    (tmp_path / "urls.tsv").write_text("url\tcaption\n" + "".join(f"{u}\t{c}\n" for u, c in rows))
    out = tmp_path / "shards"  # must not exist yet: a re-run into a used folder does nothing
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    run = subprocess.run([str(img2dataset), "--url_list", str(tmp_path / "urls.tsv"), "--input_format", "tsv",
                          "--url_col", "url", "--caption_col", "caption", "--output_format", "webdataset",
                          "--output_folder", str(out), "--image_size", "48", "--resize_mode", "center_crop",
                          "--processes_count", "1", "--thread_count", "4", "--number_sample_per_shard", "4",
                          "--distributor", "multiprocessing", "--enable_wandb", "False"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    # img2dataset exits 0 even when every download fails: the stats say what happened
    stats = [json.loads(p.read_text()) for p in sorted(out.glob("*_stats.json"))]
    assert sum(s["successes"] for s in stats) == 10, stats
    assert sum(s["count"] for s in stats) == 12
    tars = sorted(out.glob("*.tar"))
    assert len(tars) == 3 and all(t.with_suffix(".parquet").exists() for t in tars)

    preprocess = open_clip.image_transform(32, is_train=False)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    urls = S.expand(f"{out}/{{00000..{len(tars) - 1:05d}}}.tar")
    spec = StepSpec(StreamSpec([urls], [1.0], resampled=False, shuffle_buffer=1), pairs_per_step=1)
    it = iter(make_loader(spec, preprocess, lambda caps: (tokenizer(caps), caps), 0))
    steps = [next(it) for _ in range(10)]
    got = [st["pairs"]["tokens"][1][0] for st in steps]
    assert sorted(got) == sorted(c for _, c in rows[:10])  # every success once, failures absent
    assert all(st["pairs"]["images"].shape == (1, 3, 32, 32) for st in steps)
    assert all(st["pairs"]["tokens"][0].shape == (1, 77) for st in steps)
    assert sum(Counter(st["skipped"]).total() for st in steps) == 0
    # the next epoch starts over: the first sample of epoch 2 is one of the same 10
    assert next(it)["pairs"]["tokens"][1][0] in got

    # img2dataset puts a PAX extended header before every member; one damaged member header
    # in its shard costs that sample alone (tarfile raises ReadError there)
    with tarfile.open(tars[0]) as t:
        members = t.getmembers()
        caption_of = {m.name[:-4]: t.extractfile(m).read().decode()
                      for m in members if m.name.endswith(".txt")}
    assert members and all(m.pax_headers for m in members)
    jpgs = [m.name for m in members if m.name.endswith(".jpg")]
    assert len(jpgs) >= 3
    corrupt_header(tars[0], jpgs[1], which="own")
    counters = Counter()
    kept = [s["txt"].decode() for s in raw_samples([str(tars[0])], counters) if "jpg" in s]
    assert kept == [caption_of[j[:-4]] for j in jpgs if j != jpgs[1]]
    assert counters == Counter(corrupt_member=1)
