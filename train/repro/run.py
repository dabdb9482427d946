"""Run one stage of the reproduction through the real trainer (train.api):

    python -m train.repro.run stage=pretrain data=D out=O [steps=N lr=LR ...]
    python -m train.repro.run stage=finetune variant=both init=W.bin data=D out=O [...]
    python -m train.repro.run stage=pretrain data=D out=O extra="['model.precision=bf16','data.workers=2']"

A recipe over the trainer's public API: the config is composed by Hydra from conf/
(experiment=repro_mini + this stage's overrides), the stage's shard lists are set as values,
and train.api validates it with the trainer's schema, exactly as `train/main.py` would. This
module only picks the settings. `extra` holds more trainer overrides, each quoted as a list
item (an override holds '=', which Hydra's list grammar reads as structure unless quoted); it
may not set the shard lists the stage derives from `data`."""
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import open_clip

from hn_data.cli import REQUIRED, ConfigError, command, setting

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


STAGES = ("pretrain", "finetune")
# the keys a stage sets itself, from `data` (see stage_config)
STAGE_VALUES = ("data.pairs", "data.sets")


@dataclass
class RunCommand:
    stage: str = setting(REQUIRED, "pretrain or finetune")
    data: str = setting(REQUIRED, "the data folder train.repro.data wrote")
    out: str = setting(REQUIRED, "run directory")
    variant: Optional[str] = setting(None, f"finetune: one of {', '.join(sorted(VARIANTS))}")
    init: Optional[str] = setting(None, "finetune: pre-trained weights (open_clip_pytorch_model.bin)")
    steps: int = setting(1000, "optimizer steps")
    lr: float = setting(1e-3, "peak learning rate")
    warmup: int = setting(50, "warm-up steps")
    pairs: int = setting(128, "pairs per step")
    set_items: int = setting(48, "candidate-set items per step")
    lam: float = setting(1.0, "lambda, the weight of L_hn")
    seed: int = setting(0, "random seed")
    extra: List[str] = setting([], "more trainer overrides, each quoted: extra=['model.precision=bf16']")


def stage_key(override: str) -> str:
    return override.lstrip("+~").split("=")[0]


def check(args: RunCommand):
    if args.stage not in STAGES:
        raise ConfigError(f"invalid value stage={args.stage}: choose one of {', '.join(STAGES)}")
    if args.variant is not None and args.variant not in VARIANTS:
        raise ConfigError(f"invalid value variant={args.variant}: choose one of "
                          f"{', '.join(sorted(VARIANTS))}")
    if args.stage == "finetune" and not (args.variant and args.init):
        raise ConfigError("stage=finetune needs variant=... and init=...")
    for extra in args.extra:
        if stage_key(extra) in STAGE_VALUES:
            raise ConfigError(f"extra item '{extra}': the stage sets {stage_key(extra)} itself (from data=)")


@contextmanager
def outside_hydra():
    """A command runs inside Hydra's app (hn_data.cli), while the trainer's and the probe's configs
    are composed with Hydra's compose API, which refuses to start while an app holds Hydra's global
    state: set that state aside for the block, and put it back after."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        yield
    finally:
        restore_gh_from_backup(backup)


def run(args: RunCommand):
    summary = json.loads((Path(args.data) / "summary.json").read_text())
    overrides, values = stage_config(args, summary)
    assert set(values) == set(STAGE_VALUES), "STAGE_VALUES must name the keys stage_config sets"
    from train import api
    with outside_hydra():
        cfg = api.compose(["experiment=repro_mini", *overrides, *args.extra], values)
    api.train(cfg)


main = command(RunCommand, run, prog="hnclip-repro-run", doc=__doc__, check=check)


if __name__ == "__main__":
    os.environ.setdefault("WANDB_MODE", "disabled")
    sys.exit(main())
