"""Memory planner: what one training step holds per GPU, and which of ZeRO stage, gradient
checkpointing and accumulation fit a given GPU memory.

    python -m train.plan [training overrides] plan.world_size=8 plan.gpu_mem=80

The model is built on torch's meta device (no weights, no download, no memory), so the
parameter counts are the real ones of the composed config, LoRA and tower locks included.
Bytes per parameter:
    DDP (model.precision fp32/bf16 autocast): fp32 weights 4, gradients 4 + DDP's gradient
        buckets 4, AdamW states 8; bf16 autocast adds a bf16 copy of the weights (2).
    DeepSpeed ZeRO-s, bf16: weights 2, gradients 2, fp32 master + AdamW states 12;
        s >= 1 shards the 12, s >= 2 also the gradients, s = 3 also the weights, over the GPUs.
Activations per sample, per transformer block, saved for backward (pre-LN block, no dropout,
fused attention that keeps no attention matrix; Korthikanti et al., "Reducing Activation
Recomputation in Large Transformer Models", 2022, counted for this block): per token the
fp32 residual stream twice (2h, 4 bytes) and 7h + 2m (3m for QuickGELU) in the compute dtype,
h the width and m the MLP width. Gradient checkpointing keeps each block's input only, plus
one block recomputed. Every image and caption of the step's micro-batch counts; CoCa adds its
caption logits. The estimate is checked against peak memory measured on the CPU for tiny
configurations (tests/test_plan.py); docs/scale.md has the table for the large presets."""
from dataclasses import dataclass

from hn_data.cli import ConfigError as CommandConfigError, command, setting

GIB = 1024 ** 3
USABLE = 0.9   # of the GPU's memory: CUDA context, NCCL buffers and allocator fragmentation take the rest


@dataclass
class Tower:
    blocks: int
    width: int
    mlp: int
    tokens: int
    quick_gelu: bool


@dataclass
class ModelFacts:
    params: int
    trainable: int
    towers: dict                 # "image"/"text" -> Tower
    caption_vocab: int = 0       # CoCa: decoder vocabulary (caption logits per token)
    caption_tokens: int = 0


def _tower(blocks, tokens) -> Tower:
    """Width, MLP width and activation from the first block's weights (open_clip or timm)."""
    from .lora import TARGETS, _class_path
    b = blocks[0][1]
    t = TARGETS[_class_path(b)]
    qkv = b.get_submodule(t["attn"][0][0])
    qkv = getattr(qkv, t["attn"][0][1])
    fc1 = getattr(b.get_submodule(t["mlp"][0][0]), t["mlp"][0][1])
    from open_clip.transformer import QuickGELU
    quick = any(isinstance(m, QuickGELU) for m in b.modules())
    return Tower(blocks=len(blocks), width=qkv.shape[1], mlp=fc1.shape[0], tokens=tokens, quick_gelu=quick)


def model_facts(model_cfg) -> ModelFacts:
    """Build the model on the meta device and read what the estimate needs."""
    import open_clip
    import torch

    from . import lora, models  # noqa: F401  (models registers hnclip's own configs)
    with torch.device("meta"):
        m = open_clip.create_model(model_cfg.name, device="meta")
    models.lock_towers(m, model_cfg)
    lora.apply(m, model_cfg.lora)
    blocks = lora.tower_blocks(m)
    v = m.visual
    if hasattr(v, "trunk"):   # timm tower
        img_tokens = v.trunk.patch_embed.num_patches + getattr(v.trunk, "num_prefix_tokens", 1)
    else:
        gh, gw = v.grid_size
        img_tokens = gh * gw + 1
    text = getattr(m, "text", m)
    txt_tokens = text.context_length + (1 if getattr(text, "cls_emb", None) is not None else 0)
    facts = ModelFacts(params=sum(p.numel() for p in m.parameters()),
                       trainable=sum(p.numel() for p in m.parameters() if p.requires_grad),
                       towers={"image": _tower(blocks["image"], img_tokens),
                               "text": _tower(blocks["text"], txt_tokens)})
    if hasattr(m, "text_decoder"):
        facts.caption_vocab = m.text_decoder.text_projection.shape[1]
        facts.caption_tokens = text.context_length - 1
    return facts


def activation_bytes(t: Tower, samples: int, compute_bytes: int, checkpointing: bool) -> float:
    per_token = 2 * t.width * 4 + (7 * t.width + (3 if t.quick_gelu else 2) * t.mlp) * compute_bytes
    block = samples * t.tokens * per_token
    if checkpointing:   # every block's input, plus the one block being recomputed
        return t.blocks * samples * t.tokens * t.width * compute_bytes + block
    return t.blocks * block


def estimate(facts: ModelFacts, images: int, captions: int, pairs: int, bf16: bool, zero: int,
             world: int, checkpointing: bool, accum: int) -> dict:
    """Bytes per GPU of one step. zero = 0 means DDP (our own autocast), else the ZeRO stage."""
    P, T = facts.params, facts.trainable
    if zero == 0:
        weights = 4 * P + (2 * P if bf16 else 0)
        grads = (8 if world > 1 else 4) * T   # DDP's buckets hold a second copy; one process has no DDP
        optim = 8 * T
    else:
        weights = 2 * P / (world if zero == 3 else 1)
        grads = 2 * T / (world if zero >= 2 else 1)
        optim = 12 * T / world
    cb = 2 if (bf16 or zero) else 4
    micro_img, micro_txt, micro_pairs = (-(-n // accum) for n in (images, captions, pairs))
    acts = (activation_bytes(facts.towers["image"], micro_img, cb, checkpointing)
            + activation_bytes(facts.towers["text"], micro_txt, cb, checkpointing))
    if facts.caption_vocab:   # logits, their log-softmax and its gradient, fp32
        acts += 3 * 4 * micro_pairs * facts.caption_tokens * facts.caption_vocab
    return {"params": weights, "grads": grads, "optimizer": optim, "activations": acts,
            "total": weights + grads + optim + acts}


def options(facts, images, captions, pairs, bf16, world, gpu_gib):
    """Every (ZeRO stage, checkpointing, accumulation) with its total, cheapest first."""
    rows = []
    for zero in (0, 1, 2, 3):
        for ckpt in (False, True):
            # the trainer refuses accumulation under DeepSpeed (its engine steps inside backward)
            for accum in ((1, 2, 4, 8) if zero == 0 else (1,)):
                e = estimate(facts, images, captions, pairs, bf16, zero, world, ckpt, accum)
                rows.append({"zero": zero, "checkpointing": ckpt, "accum": accum, **e,
                             "fits": e["total"] <= USABLE * gpu_gib * GIB})
    return rows


def _cost(r):
    """Encoder passes per step (checkpointing recomputes each forward once; feature-cached
    accumulation over k micro-batches runs k + 1), then the less communication-heavy setup."""
    passes = (r["accum"] + 1 if r["accum"] > 1 else 1) * (2 if r["checkpointing"] else 1)
    return passes, r["zero"]


def _name(zero):
    return "DDP" if zero == 0 else f"ZeRO-{zero}"


def report(cfg, world: int, gpu_gib: float) -> str:
    facts = model_facts(cfg.model)
    images = cfg.data.pairs_per_step + cfg.data.set_items_per_step
    # a candidate set carries at least one caption per image (text-only negatives add more)
    captions = images
    bf16 = cfg.model.precision == "bf16"
    lines = [f"model {cfg.model.name}: {facts.params / 1e6:.1f} M parameters, "
             f"{facts.trainable / 1e6:.1f} M trainable; "
             f"{images} images + {captions} captions per GPU per step; {world} GPUs of {gpu_gib:g} GiB "
             f"(usable {USABLE:.0%})"]
    now = estimate(facts, images, captions, cfg.data.pairs_per_step, bf16, 0, world,
                   cfg.model.grad_checkpointing, cfg.optim.accum_steps)
    lines.append("as configured (DDP, model.grad_checkpointing={}, optim.accum_steps={}): ".format(
        cfg.model.grad_checkpointing, cfg.optim.accum_steps) + ", ".join(
        f"{k} {now[k] / GIB:.2f} GiB" for k in ("params", "grads", "optimizer", "activations", "total")))
    lines.append("")
    lines.append("| setup | checkpointing | accum | params | grads | optimizer | activations | total GiB "
                 "| fits |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    rows = options(facts, images, captions, cfg.data.pairs_per_step, bf16, world, gpu_gib)
    for r in rows:
        if r["accum"] in (1, 4):   # the table shows two; the search below tries 1, 2, 4, 8
            parts = ("params", "grads", "optimizer", "activations", "total")
            lines.append(f"| {_name(r['zero'])} | {'on' if r['checkpointing'] else 'off'} | {r['accum']} | "
                         + " | ".join(f"{r[k] / GIB:.2f}" for k in parts)
                         + f" | {'yes' if r['fits'] else 'no'} |")
    best = min((r for r in rows if r["fits"]), key=_cost, default=None)
    lines.append("")
    lines.append("cheapest that fits (fewest encoder passes, then least communication): " +
                 (f"{_name(best['zero'])}, checkpointing {'on' if best['checkpointing'] else 'off'}, "
                  f"optim.accum_steps={best['accum']} ({best['total'] / GIB:.1f} GiB)" if best else
                  "nothing: lower data.pairs_per_step / data.set_items_per_step, use more GPUs or LoRA"))
    return "\n".join(lines)


@dataclass
class PlanKeys:
    world_size: int = setting(8, "GPUs the step is spread over")
    gpu_mem: float = setting(80.0, "memory of one GPU in GiB")


def _split(cfg):
    """(the training config, validated; the planner's keys)."""
    from omegaconf import OmegaConf, open_dict

    from .config import ConfigError, validate
    cfg = cfg.copy()
    with open_dict(cfg):
        keys = PlanKeys(**OmegaConf.to_container(cfg.pop("plan")))
    try:
        return validate(cfg), keys
    except ConfigError as e:
        raise CommandConfigError(str(e)) from None


def check(cfg):
    from omegaconf import OmegaConf
    keys = PlanKeys(**OmegaConf.to_container(cfg.plan))  # the training keys: validated by plan()
    if keys.world_size < 1 or keys.gpu_mem <= 0:
        raise CommandConfigError(f"invalid plan.world_size={keys.world_size} / plan.gpu_mem={keys.gpu_mem}: "
                                 "must be >= 1 and > 0")


def plan(cfg):
    train_cfg, keys = _split(cfg)
    text = report(train_cfg, keys.world_size, keys.gpu_mem)
    print(text)
    return text


def _conf_dir():
    from .config import conf_dir
    return conf_dir()


main = command(PlanKeys, plan, prog="hnclip-plan", doc=__doc__.split("\n\n")[0], check=check,
               base=(_conf_dir(), "config", "plan"))


if __name__ == "__main__":
    main()
