"""data.decode=cuda without a GPU: everything but nvJPEG itself. The loader hands over bytes
and crop boxes (the same boxes and samples as data.decode=tensor, the same again on a resume),
the training process's half decodes them (here on the CPU: torchvision's decoder takes
device="cpu"), a JPEG the decoder refuses falls back to PIL and is counted, one nothing can
decode is dropped from its pair batch with its caption and counted, and on a machine without
CUDA the option stops the run at start-up with exit 2."""
import io
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train.data import device_decode as DD, jpeg  # noqa: E402


def _photo(w, h, seed=0):
    low = np.random.default_rng(seed).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(low).resize((w, h), Image.BICUBIC)


def _jpeg_bytes(img, **kw) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, **kw)
    return out.getvalue()


@pytest.fixture(scope="module")
def tiny():
    import open_clip
    open_clip.add_model_config(ROOT / "train" / "model_configs")
    _, pil_t, _ = open_clip.create_model_and_transforms("hnclip-tiny")
    return pil_t, open_clip.get_tokenizer("hnclip-tiny")


def _loader_steps(data, preprocess, tokenizer, start, n):
    from train.data import shards as S
    from train.data.steps import StepSpec, StreamSpec, make_loader
    pairs = StreamSpec([S.expand(f"{data}/pairs/pairs-{{000000..000007}}.tar")], [1.0], shuffle_buffer=16)
    sets = StreamSpec([S.expand(f"{data}/sets/sets-{{000000..000007}}.tar")], [1.0], shuffle_buffer=4)
    spec = StepSpec(pairs, sets, pairs_per_step=8, set_items_per_step=6, seed=1)
    return list(itertools.islice(iter(make_loader(spec, preprocess, tokenizer, 0, start)), n))


def test_the_loader_hands_over_bytes_and_boxes_that_decode_to_the_tensor_modes_images(tiny_data, tiny):
    pil_t, tok = tiny
    deferred = _loader_steps(tiny_data, jpeg.for_decode("cuda", pil_t), tok, 0, 4)
    ref = _loader_steps(tiny_data, jpeg.for_decode("tensor", pil_t), tok, 0, 4)
    decoder = DD.DeviceDecoder(pil_t, "cpu")
    for raw, want in zip(deferred, ref):
        items = raw["pairs"]["images"] + raw["sets"]["images"]
        assert all(isinstance(it, DD.DeferredImage) and it.box for it in items)
        # the pairs are JPEGs (bytes for the device), the default sets' images PNGs (decoded here)
        assert all(it.data is not None for it in raw["pairs"]["images"])
        assert all(it.pixels is not None for it in raw["sets"]["images"])
        got = decoder(raw)
        assert got["skipped"] == want["skipped"]
        assert torch.equal(got["pairs"]["tokens"], want["pairs"]["tokens"])  # the same samples
        for part in ("pairs", "sets"):
            a, b = got[part]["images"], want[part]["images"]
            assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
            # the same crop (else the mean explodes); libjpeg-turbo either way on the CPU
            assert (a - b).abs().mean() < 2e-3, part


def _handed_over(part):
    return [(x.data, x.box, None if x.pixels is None else x.pixels.tolist()) for x in part["images"]]


def test_a_resumed_loader_hands_over_the_same_bytes_and_boxes(tiny_data, tiny):
    pil_t, tok = tiny
    fast = jpeg.for_decode("cuda", pil_t)
    run, resumed = _loader_steps(tiny_data, fast, tok, 0, 4), _loader_steps(tiny_data, fast, tok, 2, 2)
    for a, b in zip(run[2:], resumed):
        for part in ("pairs", "sets"):
            assert _handed_over(a[part]) == _handed_over(b[part])


def test_a_non_jpeg_is_decoded_in_the_worker_and_only_cropped_on_the_device(tiny):
    pil_t, _ = tiny
    prep = jpeg.for_decode("cuda", pil_t)
    png = io.BytesIO()
    _photo(90, 70, 4).save(png, "PNG")
    from train.data.decode import open_for
    img = open_for(png.getvalue(), route="defer")
    item = prep(img, png.getvalue(), "x.png")
    assert item.data is None and item.pixels.shape == (3, 70, 90) and item.pixels.dtype == torch.uint8
    cmyk = open_for(_jpeg_bytes(_photo(60, 60, 5).convert("CMYK")), route="defer")
    assert prep(cmyk, b"", "cmyk.jpg").data is None  # PIL's colour conversion, on the CPU
    out = DD.DeviceDecoder(pil_t, "cpu").decode([item], {})
    assert out[0].shape == (3, 64, 64)  # hnclip-tiny's image size


def _step_of(items, tok):
    captions = [f"caption {i}" for i in range(len(items))]
    from train.text_trim import caption_lengths, text_len_of
    tokens = tok(captions)
    return {"pairs": {"images": items, "tokens": tokens, "text_len": text_len_of(tokens),
                      "text_lens": caption_lengths(tokens)}, "skipped": {"empty_caption": 1}}


def test_a_refused_jpeg_falls_back_to_the_cpu_and_an_undecodable_one_is_dropped(tiny, monkeypatch):
    pil_t, tok = tiny
    prep = jpeg.for_decode("cuda", pil_t)
    from train.data.decode import open_for
    good = [_jpeg_bytes(_photo(80, 80, i)) for i in range(4)]
    damaged = good[2][:len(good[2]) * 2 // 3]  # the header reads, the pixels do not
    datas = [good[0], good[1], damaged, good[3]]
    items = [prep(open_for(d, route="defer"), d, f"s{i}") for i, d in enumerate(datas)]
    real = DD.decode_jpeg

    def refusing(x, **k):  # a GPU decoder that refuses good[1] (and with it any batch holding it)
        xs = x if isinstance(x, list) else [x]
        if any(bytes(t.numpy().tobytes()) in (good[1], damaged) for t in xs):
            raise RuntimeError("nvjpeg: unsupported")
        return real(x, **k)
    monkeypatch.setattr(DD, "decode_jpeg", refusing)
    step = _step_of(items, tok)
    out = DD.DeviceDecoder(pil_t, "cpu")(step)
    assert out["skipped"] == {"empty_caption": 1, "device_decode_fallback": 1, "undecodable_image": 1}
    assert out["pairs"]["images"].shape == (3, 3, 64, 64)
    assert torch.equal(out["pairs"]["tokens"], step["pairs"]["tokens"][[0, 1, 3]])  # its caption went too
    assert out["pairs"]["text_lens"] == [step["pairs"]["text_lens"][i] for i in (0, 1, 3)]
    # the fallback gives the CPU decode of the same crop
    alone = DD.DeviceDecoder(pil_t, "cpu").decode([items[1]], {})[0]
    assert torch.allclose(alone, out["pairs"]["images"][1])
    sets = {"sets": {"images": [items[2]], "tokens": step["pairs"]["tokens"][:1]}}
    with pytest.raises(ValueError, match="s2: does not decode"):
        DD.DeviceDecoder(pil_t, "cpu")(sets)


def test_step_flags_carry_the_fallback_count_beside_the_skips():
    from train.trainer import StepFlags
    counts = {"undecodable_image": 2, "device_decode_fallback": 3}
    v = StepFlags.pack(False, torch.tensor(True), counts, "cpu")
    f = StepFlags.unpack((v * 2).tolist())  # two ranks' sums
    assert f.take and not f.stop_requested
    assert f.skipped == {"undecodable_image": 4, "device_decode_fallback": 6}
    bad = StepFlags.unpack(StepFlags.pack(True, torch.tensor(False), {}, "cpu").tolist())
    assert bad.stop_requested and not bad.take and bad.skipped == {}


def test_a_random_crop_after_another_step_is_refused_by_name():
    import torchvision.transforms as T
    t = T.Compose([T.Resize(80), T.RandomResizedCrop(64), T.ToTensor()])
    with pytest.raises(ValueError, match="data.decode=cuda.*random crop after.*data.decode=tensor"):
        jpeg.for_decode("cuda", t)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_data_decode_cuda_exits_2_at_start_up(tmp_path):
    r = subprocess.run([sys.executable, "train/main.py", "data.decode=cuda", f"run_dir={tmp_path}/run"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "data.decode=cuda" in r.stderr and "no CUDA device" in r.stderr
    assert not (tmp_path / "run" / "config.yaml").exists()  # the trainer never started
