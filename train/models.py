"""Build open_clip models (ours registered alongside open_clip's) and export checkpoints
that plain open_clip loads with the same architecture, activation included."""
import json
import os
import re
from pathlib import Path
from typing import Optional

import open_clip
import torch
from open_clip.pretrained import get_pretrained_cfg
from open_clip.transformer import QuickGELU

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
open_clip.add_model_config(MODEL_CONFIG_DIR)
SCHEMAS = ("local-dir:", "hf-hub:")


def tag_quick_gelu(name: str, pretrained: Optional[str]) -> Optional[bool]:
    """The activation a pretrained tag was trained with (True = QuickGELU), or None when
    `pretrained` is not one of open_clip's tags for this name (random init, a file)."""
    if not pretrained:
        return None
    tag = get_pretrained_cfg(name, pretrained)
    if not tag and name.endswith("-quickgelu"):
        # open_clip lists only QuickGELU tags under -quickgelu names; a GELU tag of the base
        # architecture is still a known tag, for the other activation
        tag = get_pretrained_cfg(name[:-len("-quickgelu")], pretrained)
    return bool(tag.get("quick_gelu", False)) if tag else None


def pretrained_problem(name: str, pretrained: Optional[str]) -> Optional[str]:
    """Why this (model name, pretrained) pair must not be built, or None. open_clip itself
    only warns when a QuickGELU tag meets a GELU config: the weights then load into the wrong
    network and every score shifts without an error."""
    if name.startswith(SCHEMAS):
        if pretrained:
            return (f"model.pretrained={pretrained!r} with model.name={name!r}: a {name.split(':')[0]}: "
                    "model brings its own weights (open_clip would ignore model.pretrained); set it to null")
        return None
    want = tag_quick_gelu(name, pretrained)
    if want is None:
        return None
    cfg = open_clip.get_model_config(name) or {}
    have = bool(cfg.get("quick_gelu", False))
    if have == want:
        return None
    act = {True: "QuickGELU", False: "GELU"}
    fix = (f"model.name={name}-quickgelu" if want and open_clip.get_model_config(f"{name}-quickgelu")
           else f"model.name={name[:-len('-quickgelu')]}" if name.endswith("-quickgelu")
           else "a config with the tag's activation")
    return (f"model.name={name} builds {act[have]} but model.pretrained={pretrained} was trained with "
            f"{act[want]}: the weights would run in the wrong network. Use {fix}")


def uses_quick_gelu(model: torch.nn.Module) -> bool:
    """What the built network actually runs (not what a config claims). By class name, so a
    timm image tower's own QuickGELU counts as well as open_clip's."""
    return any(isinstance(m, QuickGELU) or type(m).__name__ == "QuickGELU" for m in model.modules())


def create(name: str, pretrained=None):
    """Return (model, preprocess_train, preprocess_val, tokenizer). Weights stay fp32: bf16 is
    applied by autocast in the trainer so the optimizer keeps full-precision master weights."""
    problem = pretrained_problem(name, pretrained)
    if problem:
        raise ValueError(problem)
    model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
        name, pretrained=pretrained or None, precision="fp32")
    if not pretrained and not name.startswith(SCHEMAS):
        # random init: open_clip leaves one CoCa weight uninitialised (train/families.py)
        from .families import init_uninitialised
        init_uninitialised(model)
    tokenizer = open_clip.get_tokenizer(name)
    return model, preprocess_train, preprocess_val, tokenizer


def model_config(name: str) -> dict:
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ValueError(f"unknown open_clip model '{name}'; known: {open_clip.list_models()[:10]}...")
    return cfg


def export_name(name: str) -> str:
    """The plain model name an export registers under. A built-in or registered name stays as
    it is; a local-dir: export of ours keeps the name it was saved with; otherwise the last
    part of the directory or hub repository (file-name safe)."""
    if not name.startswith(SCHEMAS):
        return name
    schema, _, ident = name.partition(":")
    if schema == "local-dir":
        own = [p.stem for p in Path(ident).glob("*.json") if p.name != "open_clip_config.json"]
        if len(own) == 1:
            return own[0]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(ident.rstrip("/")).name).strip("-.") or "model"


def export_for_open_clip(model: torch.nn.Module, name: str, out_dir: Path, preprocess_cfg=None):
    """Write what plain open_clip needs to load the model without hnclip installed:
    - <out>/open_clip_pytorch_model.bin: loads with create_model_and_transforms(<export name>,
      pretrained=path) (after open_clip.add_model_config(<out>/<export name>.json) for names
      open_clip does not ship);
    - <out>/open_clip_config.json: so 'local-dir:<out>' works too.
    The config written carries the activation the trained network ran, so no later load can
    silently swap QuickGELU for GELU."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = out_dir / "open_clip_pytorch_model.bin.tmp"
    torch.save(state, tmp)
    os.replace(tmp, out_dir / "open_clip_pytorch_model.bin")
    cfg = model_config(name)
    quick = uses_quick_gelu(model)
    cfg["quick_gelu"] = quick
    plain = export_name(name)
    builtin = open_clip.get_model_config(plain)
    if builtin is not None and bool(builtin.get("quick_gelu", False)) != quick:
        raise ValueError(f"{name}: the trained network's activation (quick_gelu={quick}) differs from "
                         f"open_clip's '{plain}' config; refusing to export under that name")
    (out_dir / f"{plain}.json").write_text(json.dumps(cfg, indent=2))
    visual = getattr(model, "visual", None)
    pp = preprocess_cfg or dict(getattr(visual, "preprocess_cfg", None) or {})
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
