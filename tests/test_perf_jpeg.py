"""data.decode=tensor: the model's transform on uint8 tensors gives open_clip's crops and
pixels within a couple of grey levels, and keeps the loader's exact resume and its skip
counts."""
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train.data import jpeg  # noqa: E402


@pytest.fixture(scope="module")
def vit_transforms():
    import open_clip
    # ViT-B/32's transforms, without building the model
    return open_clip.image_transform(224, is_train=True), open_clip.image_transform(224, is_train=False)


def _photo(w, h, seed=0):
    low = np.random.default_rng(seed).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(low).resize((w, h), Image.BICUBIC)


@pytest.mark.parametrize("size", [(256, 256), (384, 300)])
def test_tensor_transform_matches_open_clips_within_two_grey_levels(vit_transforms, size):
    img = _photo(*size)
    for pil_t in vit_transforms:
        fast = jpeg.for_decode("tensor", pil_t)
        torch.manual_seed(3)
        a = pil_t(img)
        torch.manual_seed(3)
        b = fast(img)
        assert a.shape == b.shape == (3, 224, 224) and b.dtype == torch.float32
        # normalised units: 2 grey levels / 255 / std (~0.27) = 0.03; same crop, or the mean explodes
        assert (a - b).abs().max() < 0.035 and (a - b).abs().mean() < 1e-3


def test_unknown_transform_step_is_refused_by_name():
    import torchvision.transforms as T
    with pytest.raises(ValueError, match="ColorJitter.*data.decode=pil"):
        jpeg.for_decode("tensor", T.Compose([T.ColorJitter(0.1), T.ToTensor()]))
    with pytest.raises(ValueError, match="unknown data.decode 'gpu'"):
        jpeg.for_decode("gpu", None)


def _loader_steps(data, preprocess, tokenizer, start, n):
    from train.data import shards as S
    from train.data.steps import StepSpec, StreamSpec, make_loader
    pairs = StreamSpec([S.expand(f"{data}/pairs/pairs-{{000000..000007}}.tar")], [1.0], shuffle_buffer=16)
    sets = StreamSpec([S.expand(f"{data}/sets/sets-{{000000..000007}}.tar")], [1.0], shuffle_buffer=4)
    spec = StepSpec(pairs, sets,
                    pairs_per_step=8, set_items_per_step=6, seed=1)
    return list(itertools.islice(iter(make_loader(spec, preprocess, tokenizer, 0, start)), n))


def test_tensor_decode_keeps_exact_resume_and_skip_counts(tiny_data):
    import open_clip
    open_clip.add_model_config(ROOT / "train" / "model_configs")
    _, pil_t, _ = open_clip.create_model_and_transforms("hnclip-tiny")
    tok = open_clip.get_tokenizer("hnclip-tiny")
    fast = jpeg.for_decode("tensor", pil_t)
    run = _loader_steps(tiny_data, fast, tok, 0, 4)
    resumed = _loader_steps(tiny_data, fast, tok, 2, 2)
    for a, b in zip(run[2:], resumed):
        assert torch.equal(a["pairs"]["images"], b["pairs"]["images"])
        assert torch.equal(a["sets"]["images"], b["sets"]["images"])
    ref = _loader_steps(tiny_data, pil_t, tok, 0, 4)
    for a, b in zip(run, ref):
        assert a["skipped"] == b["skipped"]
        assert torch.equal(a["pairs"]["tokens"], b["pairs"]["tokens"])   # the same samples
        assert (a["pairs"]["images"] - b["pairs"]["images"]).abs().mean() < 2e-3


def test_tensor_decode_skips_and_counts_the_same_bad_images(tmp_path):
    # decoding stays PIL's, so a truncated JPEG is skipped and counted in both modes, and a
    # resumed tensor-mode loader replays past it to the same samples
    import open_clip

    from hn_data.set_format import TarWriter, write_pair, write_stats
    from train.data import shards as S
    from train.data.steps import StepSpec, StreamSpec, make_loader
    w = TarWriter(tmp_path / "pairs-000000.tar")
    for i in range(40):
        key = f"{i:04d}"
        if i % 7 == 3:
            good = tmp_path / "x.jpg"
            _photo(80, 80, i).save(good, "JPEG")
            w.add(f"{key}.jpg", good.read_bytes()[:300])   # truncated: PIL cannot decode it
            w.add(f"{key}.txt", f"broken {i}".encode())
        else:
            write_pair(w, key, _photo(80, 80, i), f"picture {i}")
    w.close()
    write_stats(tmp_path / "pairs-000000.tar", 40)
    pil_t = open_clip.image_transform(64, is_train=True)
    tok = open_clip.get_tokenizer("ViT-B-32")

    def steps(pre, start, n):
        spec = StepSpec(StreamSpec([S.expand(str(tmp_path / "pairs-000000.tar"))], [1.0], shuffle_buffer=8),
                        pairs_per_step=6, seed=2)
        return list(itertools.islice(iter(make_loader(spec, pre, tok, 0, start)), n))
    fast = jpeg.for_decode("tensor", pil_t)
    ref, run, resumed = steps(pil_t, 0, 5), steps(fast, 0, 5), steps(fast, 3, 2)
    assert sum(s["skipped"].get("undecodable_image", 0) for s in ref) > 0
    assert [s["skipped"] for s in run] == [s["skipped"] for s in ref]
    for a, b in zip(run, ref):
        assert torch.equal(a["pairs"]["tokens"], b["pairs"]["tokens"])
    for a, b in zip(run[3:], resumed):
        assert torch.equal(a["pairs"]["images"], b["pairs"]["images"])


def test_tensor_route_decodes_jpegs_to_pils_pixels_and_leaves_the_rest_to_pil():
    import io

    from train.data.decode import open_for, open_image

    def encoded(img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        return buf.getvalue()
    colour, grey = encoded(_photo(96, 80), "JPEG", quality=90), encoded(_photo(64, 64).convert("L"), "JPEG")
    for data in (colour, grey):
        got = open_for(data, route="tensor")
        assert isinstance(got, torch.Tensor) and got.dtype == torch.uint8 and got.shape[0] == 3
        want = torch.from_numpy(np.asarray(open_image(data)).copy()).permute(2, 0, 1)
        assert torch.equal(got, want)  # the same libjpeg-turbo pixels as PIL's
    for data in (encoded(_photo(40, 40), "PNG"), encoded(_photo(40, 40).convert("CMYK"), "JPEG")):
        assert isinstance(open_for(data, route="tensor"), Image.Image)  # PIL's, as in data.decode=pil
    with pytest.raises(OSError):
        open_for(colour[:300], route="tensor")  # refused by both decoders: the caller skips and counts it
