"""Build open_clip models (ours registered alongside open_clip's) and export checkpoints
that plain open_clip loads."""
import json
import os
from pathlib import Path

import open_clip
import torch

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
open_clip.add_model_config(MODEL_CONFIG_DIR)


def create(name: str, pretrained=None, precision: str = "fp32"):
    """Return (model, preprocess_train, preprocess_val, tokenizer). Weights stay fp32: bf16 is
    applied by autocast in the trainer so the optimizer keeps full-precision master weights."""
    model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
        name, pretrained=pretrained or None, precision="fp32")
    tokenizer = open_clip.get_tokenizer(name)
    return model, preprocess_train, preprocess_val, tokenizer


def model_config(name: str) -> dict:
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ValueError(f"unknown open_clip model '{name}'; known: {open_clip.list_models()[:10]}...")
    return cfg


def export_for_open_clip(model: torch.nn.Module, name: str, out_dir: Path, preprocess_cfg=None):
    """Write what plain open_clip needs to load the model without hnclip installed:
    - <out>/open_clip_pytorch_model.bin: loads with create_model_and_transforms(name, pretrained=path)
      (after open_clip.add_model_config(<out>/<name>.json) for names open_clip does not ship);
    - <out>/open_clip_config.json: so 'local-dir:<out>' works too."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = out_dir / "open_clip_pytorch_model.bin.tmp"
    torch.save(state, tmp)
    os.replace(tmp, out_dir / "open_clip_pytorch_model.bin")
    cfg = model_config(name)
    (out_dir / f"{name}.json").write_text(json.dumps(cfg, indent=2))
    pp = preprocess_cfg or {}
    (out_dir / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": cfg, "preprocess_cfg": pp}, indent=2))
    return out_dir / "open_clip_pytorch_model.bin"


def lock_towers(model, cfg):
    """Freeze towers as configured (open_clip's own lock helpers)."""
    if cfg.lock_image:
        model.lock_image_tower(unlocked_groups=cfg.lock_image_unlocked_groups, freeze_bn_stats=True)
    if cfg.lock_text:
        model.lock_text_tower(unlocked_layers=cfg.lock_text_unlocked_layers, freeze_layer_norm=True)
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
