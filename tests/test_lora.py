"""LoRA: trainable parameters exactly as configured, adapters start at the base model, the
merged export loads in plain open_clip (no hnclip importable) with identical embeddings, and a
LoRA run checkpoints adapters only and resumes bit for bit after SIGKILL."""
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

import family_lib as FL
from scale_helpers import run_trainer, step_losses, tiny_overrides
from train import checkpoint as ckpt, lora, models
from train.config import LoraConfig


def cfg(**kw):
    return SimpleNamespace(**{**LoraConfig().__dict__, "enabled": True, **kw})


# hnclip-tiny: width 128, MLP 512, 2 blocks per tower. Per block, rank r adds
# attn: r*(128+384) (packed q/k/v) + r*(128+128) (output); mlp: r*(128+512) + r*(512+128).
PER_BLOCK = {"attn": 128 + 384 + 128 + 128, "mlp": 128 + 512 + 512 + 128}


@pytest.mark.parametrize("kw,blocks,groups", [
    ({}, 4, ("attn", "mlp")),
    ({"rank": 4, "targets": ["attn"], "towers": ["text"], "layers": [-1]}, 1, ("attn",)),
    ({"rank": 2, "targets": ["mlp"], "towers": ["image"], "layers": [0, 1]}, 2, ("mlp",)),
])
def test_trainable_parameters_as_configured(kw, blocks, groups):
    model, _ = FL.make_model("clip", torch.float32)
    c = cfg(**kw)
    n = lora.apply(model, c)
    expected = c.rank * blocks * sum(PER_BLOCK[g] for g in groups)
    assert n == expected == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_every_family_gets_adapters_on_both_towers_not_on_cocas_decoder():
    for family in ("siglip", "coca"):
        model, _ = FL.make_model(family, torch.float32)
        lora.apply(model, cfg(rank=2))
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        assert any(n.startswith("visual.") for n in names) and any(n.startswith("text.") for n in names)
        assert not any(n.startswith("text_decoder.") for n in names)


def test_bad_lora_settings_are_named():
    model, _ = FL.make_model("clip", torch.float32)
    with pytest.raises(ValueError, match=r"model.lora.layers: \[5\] outside the image tower's 2 blocks"):
        lora.apply(model, cfg(layers=[5]))
    with pytest.raises(ValueError, match="model.lora.dropout must be 0"):
        lora.apply(FL.make_model("clip", torch.float32)[0], cfg(dropout=0.1))


def _embed(model, images, tokens):
    with torch.no_grad():
        return model.encode_image(images, normalize=True), model.encode_text(tokens, normalize=True)


def test_adapters_start_at_base_and_merged_export_loads_in_plain_open_clip(tmp_path):
    model, tok = FL.make_model("clip", torch.float32)
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    tokens = tok(["a red cube", "two dogs on the left", "there is no cat"])
    # frozen as apply() leaves it (torch's attention picks its kernel by requires_grad)
    for p in model.parameters():
        p.requires_grad_(False)
    base = _embed(model, images, tokens)
    lora.apply(model, cfg())
    assert all(torch.equal(a, b) for a, b in zip(base, _embed(model, images, tokens)))   # B = 0
    with torch.no_grad():   # as after training: adapters that change the model
        for n, p in model.named_parameters():
            if n.endswith(".B"):
                p.normal_(0, 0.05)
    adapted = _embed(model, images, tokens)
    assert (adapted[0] - base[0]).abs().max() > 1e-3
    plain = lora.merged(model)
    assert not lora.enabled(plain) and lora.enabled(model)   # the training model keeps its adapters
    assert set(plain.state_dict()) == set(FL.make_model("clip", torch.float32)[0].state_dict())
    models.export_for_open_clip(plain, "hnclip-tiny", tmp_path / "final")
    torch.save({"images": images, "tokens": tokens}, tmp_path / "inputs.pt")
    # a fresh interpreter in which hnclip cannot be imported: plain open_clip only
    code = (f"import sys; sys.modules['train'] = None; sys.modules['peft'] = None\n"
            f"import torch, open_clip\n"
            f"open_clip.add_model_config({str(tmp_path / 'final' / 'hnclip-tiny.json')!r})\n"
            f"m, _, _ = open_clip.create_model_and_transforms('hnclip-tiny', pretrained="
            f"{str(tmp_path / 'final' / 'open_clip_pytorch_model.bin')!r})\n"
            f"x = torch.load({str(tmp_path / 'inputs.pt')!r})\n"
            f"with torch.no_grad():\n"
            f"    torch.save((m.encode_image(x['images'], normalize=True),"
            f" m.encode_text(x['tokens'], normalize=True)),"
            f" {str(tmp_path / 'out.pt')!r})\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    reloaded = torch.load(tmp_path / "out.pt")
    for a, b in zip(adapted, reloaded):
        assert (a - b).abs().max() <= 1e-6, float((a - b).abs().max())


@pytest.mark.slow
def test_lora_run_checkpoints_adapters_only_and_resumes_exactly(tiny_data, tmp_path):
    lo = {"model.lora.enabled": "true", "model.lora.rank": 4, "optim.lr": 5e-3}
    ref = tmp_path / "ref"
    r = run_trainer(tiny_overrides(tiny_data, ref, steps=6, **lo))
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "run"
    over = tiny_overrides(tiny_data, run, steps=6, **{"checkpoint.every_steps": 3, **lo})
    assert run_trainer(over, kill_at=4).returncode == -9
    r = run_trainer(over)
    assert r.returncode == 0 and "at step 3" in r.stdout, r.stderr[-3000:]
    assert step_losses(run) == step_losses(ref)
    losses = step_losses(ref)
    assert losses[6] != losses[1]   # the adapters did train
    state = ckpt.load(ckpt.latest(run))["model"]
    n_adapter = 2 * 4 * 4   # (A, B) x 4 adapted weights per block x 4 blocks
    assert len(state) == n_adapter + 1
    assert all(k.endswith((".A", ".B")) for k in state if not k.startswith("__"))
    # the export holds merged plain weights under open_clip's own names
    final = torch.load(run / "final" / "open_clip_pytorch_model.bin", weights_only=True)
    assert not any("parametrizations" in k for k in final)
    # the evaluation commands load the adapters-only checkpoint as the merged model
    from train.eval.load import load
    m, _, tok, _ = load(checkpoint=str(ckpt.latest(run)))
    plain = {k: v for k, v in m.state_dict().items()}
    assert set(plain) == set(final) and all(torch.equal(plain[k], final[k]) for k in final)
    base, _ = FL.make_model("clip", torch.float32)
    changed = [k for k, v in base.state_dict().items() if not torch.equal(v, final[k])]
    assert changed and all(k.endswith(("in_proj_weight", "out_proj.weight", "c_fc.weight", "c_proj.weight"))
                           for k in changed)
