"""On the accelerator: the losses against the float64 CPU reference, a bf16 step, a
torch.compile step, a step that never waits for the device, the tensor image transform, and
data.decode=cuda (JPEGs decoded on the device against the CPU decode, a damaged one dropped and
counted, a short run).

Marked `cuda` and run on CUDA by bench/gpu_check.sh; skipped on a machine without one.
HNCLIP_TEST_DEVICE=cpu (bench/gpu_check.sh --cpu-dry-run) runs the same code on the CPU, so
the tests cannot rot where no GPU is at hand."""
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dist_losses_lib import flatten, random_sets, ref_hn
from train.config import LossConfig
from train.losses import POOLS, SetIndex, clip_loss, hn_loss, trusted_inputs
from train.step import forward_losses

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEVICE = torch.device(os.environ.get("HNCLIP_TEST_DEVICE", "cuda"))
ON_CUDA = DEVICE.type == "cuda"
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(ON_CUDA and not torch.cuda.is_available(),
                                 reason="no CUDA device: bench/gpu_check.sh runs these on a GPU")]
TAU = 7.0


def _to(idx: SetIndex, dev) -> SetIndex:
    fields = ("img_set", "img_cap", "img_key", "cap_set", "cap_img", "cap_key")
    return SetIndex(*(getattr(idx, f).to(dev) for f in fields))


@pytest.mark.parametrize("pool", POOLS)
def test_losses_on_the_device_match_the_float64_cpu_reference(pool):
    gen = torch.Generator().manual_seed(0)
    sets, img_emb, txt_emb = random_sets(gen, n_sets=9, dim=32)
    PI = torch.nn.functional.normalize(torch.randn(6, 32, generator=gen, dtype=torch.float64), dim=1)
    PT = torch.nn.functional.normalize(torch.randn(6, 32, generator=gen, dtype=torch.float64), dim=1)
    want = ref_hn(img_emb, txt_emb, sets, TAU, pool, True, PI, PT)
    idx, ir, cr = flatten(sets)
    f = lambda x: x.float().to(DEVICE)
    i, t = f(img_emb[ir]), f(txt_emb[cr])
    got = hn_loss(i, t, i, t, torch.tensor(TAU, device=DEVICE), _to(idx, DEVICE), pool=pool,
                  pair_img_keys=f(PI), pair_cap_keys=f(PT))
    for g, w in zip(got, want):
        assert g.device.type == DEVICE.type
        assert abs(float(g) - float(w)) < 2e-5 * abs(float(w)), (float(g), float(w))
    c64 = clip_loss(PI, PT, PI, PT, torch.tensor(TAU, dtype=torch.float64))
    c32 = clip_loss(f(PI), f(PT), f(PI), f(PT), torch.tensor(TAU, device=DEVICE))
    assert abs(float(c32) - float(c64)) < 2e-5 * float(c64)


def _tiny_model():
    import open_clip
    open_clip.add_model_config(ROOT / "train" / "model_configs")
    torch.manual_seed(0)
    return open_clip.create_model("hnclip-tiny").to(DEVICE)


def _batch(n_pairs=8, n_sets=3, k=3, size=64, ctx=32):
    g = torch.Generator().manual_seed(1)
    n = n_sets * k
    i = torch.arange(n)
    def tok(m):
        # EOT (the highest id) at varied positions, zeros after it: captions of varied length
        t = torch.randint(1, 400, (m, ctx), generator=g)
        eot = torch.randint(3, ctx, (m,), generator=g)
        t[torch.arange(ctx)[None, :] > eot[:, None]] = 0
        t[torch.arange(m), eot] = 49407
        return t
    sets = {"images": torch.randn(n, 3, size, size, generator=g), "tokens": tok(n),
            "img_set": i // k, "img_cap": i.clone(), "img_key": i + 1000, "cap_set": i // k,
            "cap_img": i.clone(), "cap_key": i + 2000, "n_sets": n_sets}
    return {"pairs": {"images": torch.randn(n_pairs, 3, size, size, generator=g), "tokens": tok(n_pairs)},
            "sets": sets}


def _loss_and_grads(model, batch, bf16=False, params=None):
    params = params or model
    params.zero_grad(set_to_none=True)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=bf16):
        loss, logs = forward_losses(model, batch, LossConfig(), DEVICE)
    loss.backward()
    return loss.detach().float(), {n: p.grad.detach().float().clone() for n, p in params.named_parameters()}


def test_a_bf16_step_is_close_to_fp32():
    model, batch = _tiny_model(), _batch()
    l32, g32 = _loss_and_grads(model, batch)
    l16, g16 = _loss_and_grads(model, batch, bf16=True)
    assert torch.isfinite(l16) and abs(float(l16 - l32)) < 0.05 * float(l32)
    cos = torch.nn.functional.cosine_similarity(torch.cat([g.flatten() for g in g16.values()]),
                                                torch.cat([g.flatten() for g in g32.values()]), dim=0)
    assert cos > 0.95, float(cos)


def test_a_compiled_step_equals_eager():
    model, batch = _tiny_model(), _batch()
    l_eager, g_eager = _loss_and_grads(model, batch)
    # inductor on CUDA (the real thing); on the CPU dry run dynamo + AOT autograd without
    # inductor's C++ code generation, which takes minutes on a small CPU
    compiled = torch.compile(model, backend="inductor" if ON_CUDA else "aot_eager")
    l_comp, g_comp = _loss_and_grads(compiled, batch, params=model)
    assert abs(float(l_comp - l_eager)) < 1e-4 * float(l_eager)
    for n, g in g_eager.items():
        assert torch.allclose(g_comp[n], g, rtol=1e-3, atol=1e-5), n


def test_the_step_never_waits_for_the_device():
    # CUDA's sync debug mode raises on every device->host wait, C++-internal ones included
    # (a boolean-mask index, nonzero, .item()); on the CPU the same code runs unchecked
    from train import text_trim
    model, batch = _tiny_model(), _batch()
    assert text_trim.enable(model)  # as the trainer runs it: text in length-sorted runs
    for part in ("pairs", "sets"):
        batch[part]["text_lens"] = text_trim.caption_lengths(batch[part]["tokens"])
    plan = text_trim.plan_for(batch)
    assert plan is not None and len(plan.sizes) > 1
    forward_losses(model, batch, LossConfig(), DEVICE)  # warm-up: lazy inits may sync once
    if ON_CUDA:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
    try:
        with trusted_inputs(), text_trim.chunked(plan):
            loss, logs = forward_losses(model, batch, replace(LossConfig(), hn_negatives="step+pairs"),
                                        DEVICE)
            loss.backward()
    finally:
        if ON_CUDA:
            torch.cuda.set_sync_debug_mode("default")
    assert all(v.device.type == DEVICE.type for v in logs.values())
    assert torch.isfinite(loss)


def test_the_tensor_image_transform_runs_on_the_device_too():
    import numpy as np
    import open_clip
    from PIL import Image

    from train.data.jpeg import _to_uint8_chw, tensor_steps
    train_t = open_clip.image_transform(224, is_train=True)  # ViT-B/32's train transform
    low = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((384, 300), Image.BICUBIC)
    steps = tensor_steps(train_t)
    torch.manual_seed(3)
    on_cpu = steps(_to_uint8_chw(img))
    torch.manual_seed(3)
    on_dev = steps(_to_uint8_chw(img).to(DEVICE))
    assert on_dev.device.type == DEVICE.type and on_dev.shape == (3, 224, 224)
    assert (on_dev.cpu() - on_cpu).abs().max() < 0.035


def _jpeg(w, h, seed, mode="RGB", **save):
    import io

    import numpy as np
    from PIL import Image
    low = np.random.default_rng(seed).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((w, h), Image.BICUBIC).convert(mode)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, **save)
    return out.getvalue()


def _deferred(pre, datas):
    from train.data.decode import open_for
    return [pre(open_for(d, route="defer"), d, f"image {i}") for i, d in enumerate(datas)]


def test_jpegs_decoded_on_the_device_match_the_cpu_decode():
    # data.decode=cuda against data.decode=tensor: the same crops (the boxes are drawn in the
    # loader from the same generator), pixels within a few grey levels (nvJPEG's IDCT and
    # chroma upsampling are not libjpeg-turbo's)
    import open_clip

    from train.data import jpeg
    from train.data.decode import open_image
    from train.data.device_decode import DeviceDecoder
    train_t = open_clip.image_transform(224, is_train=True)  # ViT-B/32's
    datas = [_jpeg(256, 256, 0), _jpeg(384, 300, 1), _jpeg(300, 384, 2, progressive=True),
             _jpeg(256, 256, 3, mode="L")]
    torch.manual_seed(5)
    items = _deferred(jpeg.for_decode("cuda", train_t), datas)
    counts = {}
    got = DeviceDecoder(train_t, DEVICE).decode(items, counts)
    torch.manual_seed(5)
    cpu = jpeg.for_decode("tensor", train_t)
    want = [cpu(open_image(d)) for d in datas]
    assert counts == {}  # none fell back to the CPU
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.device.type == DEVICE.type and g.shape == w.shape == (3, 224, 224)
        diff = (g.cpu() - w).abs()
        # normalised units: 0.03 is about 2 grey levels
        assert diff.mean() < 0.01 and diff.max() < 0.2, (i, float(diff.mean()), float(diff.max()))


def test_a_damaged_jpeg_in_a_device_batch_is_dropped_and_counted():
    import open_clip

    from train.data import jpeg
    from train.data.device_decode import DeviceDecoder
    train_t = open_clip.image_transform(224, is_train=True)
    good = [_jpeg(256, 256, i) for i in range(3)]
    damaged = good[1][:len(good[1]) * 2 // 3]  # the header reads, the data stops
    tok = open_clip.get_tokenizer("ViT-B-32")
    tokens = tok(["a", "b", "c", "d"])
    step = {"pairs": {"images": _deferred(jpeg.for_decode("cuda", train_t), [good[0], damaged] + good[1:]),
                      "tokens": tokens}, "skipped": {}}
    out = DeviceDecoder(train_t, DEVICE)(step)
    assert out["skipped"] == {"undecodable_image": 1}, out["skipped"]
    assert out["pairs"]["images"].shape == (3, 3, 224, 224)
    assert torch.equal(out["pairs"]["tokens"], tokens[[0, 2, 3]])


@pytest.mark.skipif(not ON_CUDA, reason="data.decode=cuda needs CUDA (the CPU dry run checks the rest)")
def test_a_run_with_data_decode_cuda_trains(tiny_data, tmp_path):
    import json

    from conftest import compose
    from train.config import validate
    from train.trainer import Trainer
    over = {"data.root": tiny_data, "run_dir": tmp_path / "run", "optim.steps": 3, "optim.warmup_steps": 1,
            "data.pairs_per_step": 8, "data.set_items_per_step": 6, "data.workers": 1,
            "data.decode": "cuda", "eval.every_steps": 0, "eval.benchmarks": "[]", "logger.wandb": "false",
            "checkpoint.every_steps": 0, "checkpoint.resume": "false"}
    Trainer(validate(compose([f"{k}={v}" for k, v in over.items()]))).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss/total" in r]
    assert len(rows) == 3 and all(r["step_skipped"] == 0 and r["loss/total"] == r["loss/total"] for r in rows)
