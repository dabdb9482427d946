"""LoRA adapters (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", 2021) on
the attention and MLP projections of either tower of an open_clip model.

Each adapted weight W becomes W + (alpha / rank) * B @ A through torch's parametrizations
(torch.nn.utils.parametrize), not by wrapping modules: torch's MultiheadAttention, which
open_clip's blocks use, reads its packed q/k/v and output weights as tensors and never calls
them as modules, so a module wrapper (peft's route) would not see them. A starts random, B at
zero, so training starts from the base model exactly.

Only A and B are trained and checkpointed (with a fingerprint of the frozen base, checked on
resume); the export merges them into plain weights that open_clip loads with no hnclip
installed. Adapter input dropout is not offered: a weight parametrization never sees the
layer's input (see docs/families.md)."""
import copy
import math

import torch
from torch import nn
from torch.nn.utils import parametrize

# block class -> {target group: weight tensors (module path, parameter name) within the block}
TARGETS = {
    "open_clip.transformer.ResidualAttentionBlock": {
        "attn": [("attn", "in_proj_weight"), ("attn.out_proj", "weight")],
        "mlp": [("mlp.c_fc", "weight"), ("mlp.c_proj", "weight")]},
    "timm.models.vision_transformer.Block": {   # timm towers (SigLIP's image tower)
        "attn": [("attn.qkv", "weight"), ("attn.proj", "weight")],
        "mlp": [("mlp.fc1", "weight"), ("mlp.fc2", "weight")]},
}
TOWERS = ("image", "text")


class LoRADelta(nn.Module):
    """Parametrization W -> W + scale * B @ A."""

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float):
        super().__init__()
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))   # as nn.Linear (and the LoRA paper's code)
        self.scale = alpha / rank

    def forward(self, W):
        return W + self.scale * (self.B @ self.A).to(W.dtype)


def _class_path(m):
    return f"{type(m).__module__}.{type(m).__name__}"


def tower_blocks(model):
    """{tower: [(name, block), ...]} in depth order. The image tower is everything under
    `visual`; the text tower the rest, except CoCa's multimodal decoder."""
    out = {t: [] for t in TOWERS}
    for name, m in model.named_modules():
        if _class_path(m) in TARGETS and not name.startswith("text_decoder."):
            out["image" if name.startswith("visual.") else "text"].append((name, m))
    return out


def _pick_layers(blocks, layers, tower):
    if layers is None:
        return blocks
    n = len(blocks)
    bad = [i for i in layers if not -n <= i < n]
    if bad:
        raise ValueError(f"model.lora.layers: {bad} outside the {tower} tower's {n} blocks "
                         f"(0..{n - 1}, or negative from the end)")
    return [blocks[i % n] for i in sorted({i % n for i in layers})]


def apply(model, cfg) -> int:
    """Freeze the model and add adapters as configured (cfg = model.lora). Returns the number
    of trainable parameters (0 and no change when cfg.enabled is false)."""
    if not cfg.enabled:
        return 0
    if cfg.rank < 1:
        raise ValueError(f"model.lora.rank must be >= 1, got {cfg.rank}")
    if cfg.dropout:
        raise ValueError("model.lora.dropout must be 0: adapters are weight parametrizations, which never "
                         "see the layer's input (docs/families.md)")
    unknown = set(cfg.targets) - {"attn", "mlp"} or set(cfg.towers) - set(TOWERS)
    if unknown:
        raise ValueError(f"model.lora: unknown targets/towers {sorted(unknown)}; "
                         f"targets from ['attn', 'mlp'], towers from {list(TOWERS)}")
    for p in model.parameters():
        p.requires_grad_(False)
    blocks = tower_blocks(model)
    n_trainable = 0
    for tower in cfg.towers:
        if not blocks[tower]:
            raise ValueError(f"model.lora.towers includes '{tower}' but that tower has no transformer blocks "
                             f"hnclip knows how to adapt ({', '.join(TARGETS)})")
        for _, block in _pick_layers(blocks[tower], cfg.layers, tower):
            for group in cfg.targets:
                for path, pname in TARGETS[_class_path(block)][group]:
                    owner = block.get_submodule(path)
                    w = getattr(owner, pname)
                    delta = LoRADelta(*w.shape, cfg.rank, cfg.alpha).to(device=w.device, dtype=w.dtype)
                    parametrize.register_parametrization(owner, pname, delta)
                    n_trainable += delta.A.numel() + delta.B.numel()
    return n_trainable


def enabled(model) -> bool:
    return any(isinstance(m, LoRADelta) for m in model.modules())


def _is_adapter(name):
    return ".parametrizations." in name and name.rsplit(".", 1)[-1] in ("A", "B")


def base_fingerprint(model) -> float:
    """A float64 sum of every frozen weight: resuming adapters onto another base is an error."""
    with torch.no_grad():
        named = sorted(model.named_parameters(), key=lambda x: x[0])
        return float(sum(p.detach().double().sum() * (i + 1) for i, (n, p) in enumerate(named)
                         if not _is_adapter(n)))


def checkpoint_state(model) -> dict:
    """What a training checkpoint keeps of the model: everything without adapters; with
    adapters only A and B (and the base fingerprint)."""
    if not enabled(model):
        return model.state_dict()
    state = {n: p.detach().clone() for n, p in model.named_parameters() if _is_adapter(n)}
    state["__lora_base_fingerprint__"] = torch.tensor(base_fingerprint(model), dtype=torch.float64)
    return state


def load_checkpoint_state(model, state: dict, source="the checkpoint"):
    if not enabled(model):
        if "__lora_base_fingerprint__" in state:
            raise ValueError(f"{source} holds LoRA adapters only, but model.lora.enabled is false")
        return model.load_state_dict(state)
    if "__lora_base_fingerprint__" not in state:
        raise ValueError(f"{source} holds a full model, but model.lora.enabled is true: resume with the "
                         f"run's own model.lora settings")
    state = dict(state)
    saved = float(state.pop("__lora_base_fingerprint__"))
    now = base_fingerprint(model)
    if abs(saved - now) > 1e-9 * max(abs(saved), 1.0):
        raise ValueError(f"{source}: the frozen base weights differ from the ones the adapters were trained "
                         f"on (fingerprint {saved!r} vs {now!r}); resume with the same model.name, "
                         f"model.pretrained and seed")
    own = {n for n, _ in model.named_parameters() if _is_adapter(n)}
    if set(state) != own:
        missing, extra = sorted(own - set(state)), sorted(set(state) - own)
        raise ValueError(f"{source}: adapters do not match model.lora "
                         f"(missing {missing[:3]}, unexpected {extra[:3]})")
    with torch.no_grad():
        params = dict(model.named_parameters())
        for n, v in state.items():
            params[n].copy_(v)


def holds_adapters(state: dict) -> bool:
    return "__lora_base_fingerprint__" in state


def load_adapted(run_cfg, state: dict, source="the checkpoint"):
    """A LoRA run's checkpoint as a plain (merged) model: the frozen base rebuilt exactly as
    the trainer built it (same seed before models.create), the adapters loaded, then merged."""
    import torch as _torch

    from . import models
    _torch.manual_seed(run_cfg.seed)
    model = models.create(run_cfg.model.name, run_cfg.model.pretrained)[0]
    apply(model, run_cfg.model.lora)
    load_checkpoint_state(model, state, source=str(source))
    return merged(model)


def merged(model):
    """A copy with every adapter folded into its weight (W + scale * B @ A, computed as the
    parametrized forward computes it): a plain open_clip model. The model itself if none."""
    if not enabled(model):
        return model
    out = copy.deepcopy(model)
    for m in list(out.modules()):
        if parametrize.is_parametrized(m):
            for pname in list(m.parametrizations.keys()):
                parametrize.remove_parametrizations(m, pname, leave_parametrized=True)
    for p in out.parameters():
        p.requires_grad_(True)
    return out
