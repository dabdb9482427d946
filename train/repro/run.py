"""Run one stage of the reproduction through the real trainer (train.api):

    python -m train.repro.run pretrain --data D --out O [--steps N --lr LR ...]
    python -m train.repro.run finetune --variant both --data D --out O [...]

A recipe over the trainer's public API: the config is composed by Hydra from conf/
(experiment=repro_mini + this stage's overrides), the stage's shard lists are set as values,
and train.api validates it with the trainer's schema, exactly as `train/main.py` would. This
module only picks the settings."""
import argparse
import os
import sys
from pathlib import Path

import open_clip

# register hnclip-repro before the trainer builds the model
open_clip.add_model_config(Path(__file__).parent / "model_configs")

# Table 3's four rows. "none" is the pre-trained model itself (no run).
VARIANTS = {
    "hn": "+L_hn",
    "clip": "+L_clip",
    "both": "+L_clip + lambda*L_hn",
}


def variant_overrides(variant, lam):
    if variant == "hn":       # L_hn alone: L_clip's weight 0 (pairs still flow: same data)
        return ["loss.clip_weight=0", f"loss.hn_weight={lam}"]
    if variant == "clip":     # L_clip alone: sets still flow, their loss weighs 0
        return ["loss.clip_weight=1", "loss.hn_weight=0"]
    if variant == "both":
        return ["loss.clip_weight=1", f"loss.hn_weight={lam}"]
    raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")


def shards(data, prefix, n):
    return f"{data}/{prefix}-{{{0:06d}..{n - 1:06d}}}.tar"


def stage_config(args, summary):
    """-> (Hydra overrides, {key: value}) of one stage: scalars as overrides, after which the
    user's --extra overrides go; the shard lists as plain values."""
    sh = summary["shards"]
    overrides = [f"data.root={args.data}", f"run_dir={args.out}", f"optim.steps={args.steps}",
                 f"optim.lr={args.lr}", f"optim.warmup_steps={args.warmup}", f"seed={args.seed}",
                 f"data.pairs_per_step={args.pairs}"]
    if args.stage == "pretrain":
        pairs = shards(args.data + "/pairs", "pretrain", sh["pretrain"])
        overrides += ["data.set_items_per_step=0", "loss.hn_weight=0", "run_name=repro_pretrain"]
        return overrides, {"data.pairs": [{"urls": pairs, "weight": 1.0}], "data.sets": []}
    pairs = shards(args.data + "/pairs", "finetune", sh["finetune"])
    sets = shards(args.data + "/sets", "sets", sh["sets"])
    overrides += [f"model.pretrained={args.init}", f"data.set_items_per_step={args.set_items}",
                  f"run_name=repro_{args.variant}", *variant_overrides(args.variant, args.lam)]
    return overrides, {"data.pairs": [{"urls": pairs, "weight": 1.0}],
                       "data.sets": [{"urls": sets, "weight": 1.0}]}


def main(argv=None):
    import json
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["pretrain", "finetune"])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, help="run directory")
    ap.add_argument("--variant", choices=sorted(VARIANTS))
    ap.add_argument("--init", help="pre-trained weights (open_clip_pytorch_model.bin) for finetune")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--pairs", type=int, default=128, help="pairs per step")
    ap.add_argument("--set-items", type=int, default=48, help="candidate-set items per step")
    ap.add_argument("--lam", type=float, default=1.0, help="lambda, the weight of L_hn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides")
    args = ap.parse_args(argv)
    if args.stage == "finetune" and not (args.variant and args.init):
        ap.error("finetune needs --variant and --init")
    summary = json.loads((Path(args.data) / "summary.json").read_text())
    overrides, values = stage_config(args, summary)
    for extra in args.extra:
        if extra.lstrip("+~").split("=")[0] in values:
            ap.error(f"--extra {extra}: the stage sets {extra.split('=')[0]} itself (from --data)")
    from train import api
    cfg = api.compose(["experiment=repro_mini", *overrides, *args.extra], values)
    api.train(cfg)


if __name__ == "__main__":
    os.environ.setdefault("WANDB_MODE", "disabled")
    sys.exit(main())
