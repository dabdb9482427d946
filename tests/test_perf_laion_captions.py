"""The benchmark's LAION-length captions: the length distribution has LAION's median and tail,
and re-captioned shards keep every image byte and key while only the text changes."""
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import laion_captions as L  # noqa: E402
from hn_data.set_format import TarWriter, write_pair, write_stats  # noqa: E402


def test_word_counts_have_laion_median_and_tail():
    w = L.word_counts(200_000, np.random.default_rng(0))
    assert 9.5 <= np.median(w) <= 10.5
    assert 0.02 <= (w > 50).mean() <= 0.03
    assert w.min() >= 1 and w.max() <= L.MAX_WORDS


def _pair_shards(root, n_shards=2, per_shard=70):
    (root / "pairs").mkdir(parents=True)
    (root / "sets").mkdir()
    for s in range(n_shards):
        w = TarWriter(root / "pairs" / f"pairs-{s:06d}.tar")
        for i in range(per_shard):
            write_pair(w, f"{s:04d}{i:04d}", Image.new("RGB", (8, 8), (i, s, 7)), "a dog")
        w.close()
        write_stats(root / "pairs" / f"pairs-{s:06d}.tar", per_shard)


def _members(path):
    with tarfile.open(path) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers()}


def test_rewritten_shards_keep_images_and_keys_and_fill_the_context(tmp_path):
    import open_clip
    src, out = tmp_path / "default", tmp_path / "laion"
    _pair_shards(src)
    L.make(src, out)
    for s in sorted((src / "pairs").glob("*.tar")):
        a, b = _members(s), _members(out / "pairs" / s.name)
        assert a.keys() == b.keys()
        assert all(a[k] == b[k] for k in a if k.endswith(".jpg"))
        texts = [b[k].decode() for k in b if k.endswith(".txt")]
        assert all(t != "a dog" and t for t in texts)
    assert (out / "sets").resolve() == (src / "sets").resolve()
    tok = open_clip.get_tokenizer("ViT-B-32")
    stats = L.token_stats(out, tok, 77)
    assert stats["captions"] == 140 and 8 <= stats["median_tokens"] <= 20
    # the tail reaches the context: the long captions are there, unlike the short default
    assert stats["share_filling_context"] > 0
    assert L.token_stats(src, tok, 77)["share_filling_context"] == 0
    before = _members(out / "pairs" / "pairs-000000.tar")
    L.make(src, out)            # deterministic and idempotent: a second call rewrites nothing
    assert _members(out / "pairs" / "pairs-000000.tar") == before
