"""Decoding what real files hold: 16-bit and other PIL modes give the right RGB values, an
image over data.max_image_pixels is skipped from its header alone, a caption that is not
UTF-8 is skipped; a candidate set whose members are not exactly 0..K-1 (one lost to a
damaged header, say) is skipped instead of pairing images with the wrong captions. Every
skip is counted in the step's `skipped` dict, which the trainer logs."""
import io
import json
import struct
import zlib
from collections import Counter

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from data_lib import corrupt_header, identity_tokenizer, jpg, pair_shards, set_color, set_shards, tensor
from hn_data.set_format import TarWriter
from train.data.decode import check_pair, open_image
from train.data.steps import StepSpec, StreamSpec, make_loader, spec_from_config


def encoded(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def rgb(data):
    return np.asarray(open_image(data)).astype(int)


def test_16_bit_grey_png_keeps_its_values():
    values = np.array([[0, 257, 1000], [30000, 40000, 65535]], np.uint16)
    data = encoded(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"  # what Pillow makes of a 16-bit PNG
    got = rgb(data)
    want = np.rint(values / 257).astype(int)  # 0, 1, 4, 117, 156, 255; convert() gave 255s
    assert (got == want[..., None]).all(), got[..., 0]


def test_other_modes_decode_to_the_right_rgb():
    # mode I (TIFF integer, 16-bit PGM): the 16-bit scale
    data = encoded(Image.fromarray(np.array([[0, 1000, 65535]], np.int32), "I"), "TIFF")
    assert (rgb(data)[..., 0] == [[0, 4, 255]]).all()
    # mode F: Pillow's 0..255 scale, rounded and clipped
    data = encoded(Image.fromarray(np.array([[0.4, 100.6, 300, -5]], np.float32), "F"), "TIFF")
    assert (rgb(data)[..., 0] == [[0, 101, 255, 0]]).all()
    # LA: alpha composited on white (convert() dropped it: a transparent pixel showed grey 100)
    la = Image.fromarray(np.array([[[100, 255], [100, 0], [100, 128]]], np.uint8), "LA")
    got = rgb(encoded(la, "PNG"))[0, :, 0]
    assert list(got) == [100, 255, round(100 * 128 / 255 + 255 * 127 / 255)], got
    # P with a transparent palette index: that pixel is white, the other keeps its colour
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.putpixel((1, 0), 1)
    got = rgb(encoded(p, "PNG", transparency=1))
    assert got[0, 0].tolist() == [255, 0, 0] and got[0, 1].tolist() == [255, 255, 255]
    # RGBA: composited on white too
    rgba = Image.new("RGBA", (1, 1), (0, 0, 0, 0))
    assert rgb(encoded(rgba, "PNG"))[0, 0].tolist() == [255, 255, 255]
    # CMYK JPEG: (255 - c)(255 - k)/255 per channel
    cmyk = Image.new("CMYK", (8, 8), (10, 20, 30, 40))
    got = rgb(encoded(cmyk, "JPEG", quality=100))[4, 4]
    want = [round((255 - c) * (255 - 40) / 255) for c in (10, 20, 30)]
    assert np.abs(got - want).max() <= 2, (got, want)


def png_header_only(w, h):
    """A PNG whose header says w x h but whose pixel data is missing: decoding it fails,
    so skipping it as oversized proves the limit is checked before any decoding."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
            + chunk(b"IEND", b""))


def test_pixel_limit_is_checked_from_the_header(tmp_path):
    c = Counter()
    assert check_pair({"png": png_header_only(12000, 12000), "txt": b"huge"}, c) is None
    assert c == Counter(oversized_image=1)
    c = Counter()
    assert check_pair({"png": png_header_only(400, 300), "txt": b"small"}, c, max_pixels=120_000) is None
    assert c == Counter(undecodable_image=1)  # within the limit: decoded, and its data is missing
    # through the loader, from the config key: a 64x64 image over a 4000-pixel limit
    w = TarWriter(tmp_path / "p-000000.tar")
    for i, side in enumerate([8, 64, 8, 8, 8]):
        w.add(f"{i:04d}.png", encoded(Image.new("RGB", (side, side), (i, 0, 0)), "PNG"))
        w.add(f"{i:04d}.txt", f"cap {i}".encode())
    w.close()
    cfg = OmegaConf.create({"pairs": [{"urls": str(tmp_path / "p-000000.tar"), "weight": 1.0}], "sets": [],
                            "pairs_per_step": 4, "set_items_per_step": 0, "resampled": False,
                            "shuffle_buffer": 1, "skip_missing_shards": False, "lookahead_sets": 4,
                            "max_image_pixels": 4000})
    step = next(iter(make_loader(spec_from_config(cfg, 0, 0, 1), tensor, identity_tokenizer, 0)))
    assert step["pairs"]["tokens"] == ["cap 0", "cap 2", "cap 3", "cap 4"]
    assert step["skipped"] == {"oversized_image": 1}


def test_non_utf8_caption_is_skipped_and_counted():
    c = Counter()
    assert check_pair({"jpg": jpg((1, 2, 3)), "txt": b"caf\xe9 au lait"}, c) is None  # latin-1
    assert c == Counter(non_utf8_caption=1)
    out = check_pair({"jpg": jpg((1, 2, 3)), "txt": "\ufeffcafé".encode()}, c)
    assert out[1] == "café"  # a byte-order mark is not part of the caption


def _set_shard(path, members, links):
    """One set whose image members are KEY.<m>.jpg for m in members, then a good set."""
    w = TarWriter(path)
    caps = [f"set0 cap{k}" for k in range(max(len(links), 2))]
    w.add("00000000.json", json.dumps({"subset": "x", "captions": caps, "image_caption": links,
                                       "objects": [], "meta": {}}).encode())
    for m in members:
        w.add(f"00000000.{m}.jpg", jpg(set_color(0, m)))
    w.add("00000001.json", json.dumps({"subset": "x", "captions": ["set1 cap0", "set1 cap1"],
                                       "image_caption": [0, 1], "objects": [], "meta": {}}).encode())
    for m in range(2):
        w.add(f"00000001.{m}.jpg", jpg(set_color(1, m)))
    w.close()
    return str(path)


def set_steps(tmp_path, set_urls, n_steps, items=2):
    pairs = pair_shards(tmp_path / "p", "a", 1, 4)
    sp = StepSpec(StreamSpec([pairs], [1.0], False, 1), StreamSpec([set_urls], [1.0], False, 1),
                  pairs_per_step=1, set_items_per_step=items, lookahead_sets=1)
    it = iter(make_loader(sp, tensor, identity_tokenizer, 0))
    return [next(it) for _ in range(n_steps)]


@pytest.mark.parametrize("members,links", [([0, 2], [0, 1]), ([0, 2], [0, 1, 2]), ([1, 2], [0, 1])])
def test_set_members_must_be_exactly_0_to_k_minus_1(tmp_path, members, links):
    url = _set_shard(tmp_path / "sets-000000.tar", members, links)
    steps = set_steps(tmp_path, [url], 2)
    # epoch mode, one shard: the bad set never appears, the good one every epoch
    for st in steps:
        assert st["sets"]["tokens"] == ["set1 cap0", "set1 cap1"]
    assert sum(st["skipped"].get("incomplete_set", 0) for st in steps) == 2  # once per epoch


def test_set_that_lost_a_member_to_a_damaged_header_is_skipped(tmp_path):
    urls = set_shards(tmp_path / "s", [3, 2, 2], n_shards=1)
    corrupt_header(urls[0], "00000000.1.jpg")
    steps = set_steps(tmp_path, urls, 2)
    seen = [c for st in steps for c in st["sets"]["tokens"]]
    assert not any(c.startswith("set0 ") for c in seen) and {"set1 cap0", "set2 cap0"} <= set(seen)
    assert steps[0]["skipped"] == {"corrupt_member": 1, "incomplete_set": 1}
