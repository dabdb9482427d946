"""WiSE-FT (Wortsman et al.): theta(alpha) = (1 - alpha) * theta_initial + alpha * theta_finetuned,
evaluated over a sweep of alpha, so a user can pick the trade-off between fine-grained and
zero-shot scores.

    python -m train.wise_ft finetuned=outputs/default alphas=[0,0.25,0.5,0.75,1]
    python -m train.wise_ft finetuned=outputs/paper initial_model=ViT-B-32-quickgelu initial_pretrained=openai

The initial weights default to the run's own start (its pretrained weights, or the seeded random
init). Benchmarks and their options come from an eval config (conf/eval/<eval>.yaml, default
`default`); `suites.<name>.<key>=...`, `batch_size=` and `spec_root=` override it, as for
train.evaluate. Writes <out>/wise_ft.{json,md,png} (default out: RUN/wise_ft); the directory is
made before any evaluation."""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import torch

from hn_data.cli import REQUIRED, ConfigError, command, setting

from .contract import is_count
from .evaluate import EvalConfigKeys, command_eval_config, evaluate
from .load import initial_of, load


def interpolate(initial: dict, finetuned: dict, alpha: float) -> dict:
    if set(initial) != set(finetuned):
        diff = sorted(set(initial) ^ set(finetuned))[:5]
        raise ValueError(f"WiSE-FT: the two models' parameters differ, e.g. {diff}")
    out = {}
    for k, v in finetuned.items():
        v0 = initial[k]
        if v.shape != v0.shape:
            raise ValueError(f"WiSE-FT: shape mismatch for {k}: {tuple(v0.shape)} vs {tuple(v.shape)}")
        # integer buffers (e.g. position ids) are not weights: take the fine-tuned ones
        out[k] = torch.lerp(v0.float(), v.float(), alpha).to(v.dtype) if v.is_floating_point() else v.clone()
    return out


def plot(sweep, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    alphas = sorted(sweep)
    keys = [k for k in sweep[alphas[0]] if not is_count(k)
            and (k.startswith("spec/mean") or "/avg" in k
                 or k.endswith(("top1", "group", "R@1", "macro/acc")))]
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in keys:
        ax.plot(alphas, [sweep[a][k] for a in alphas], marker="o", label=k)
    ax.set_xlabel("alpha (0 = initial, 1 = fine-tuned)")
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


@dataclass
class WiseFtCommand(EvalConfigKeys):
    finetuned: str = setting(REQUIRED, "the fine-tuned model: run dir, export dir or trainer checkpoint")
    initial: Optional[str] = setting(None, "checkpoint of the initial weights (default: the run's start)")
    initial_model: Optional[str] = setting(None, "or the initial weights as an open_clip model name "
                                           "(with initial_pretrained)")
    initial_pretrained: Optional[str] = setting(None, "open_clip tag or weights file of initial_model")
    alphas: List[float] = setting([0.0, 0.25, 0.5, 0.75, 1.0], "the mixing weights, each in [0, 1] "
                                  "(0 = initial, 1 = fine-tuned)")
    out: Optional[str] = setting(None, "output dir (default: <finetuned dir>/wise_ft)")


def check(args: WiseFtCommand):
    if not args.alphas:
        raise ConfigError("alphas=[]: give at least one alpha, e.g. alphas=[0,0.5,1]")
    bad = [a for a in args.alphas if not 0.0 <= a <= 1.0]
    if bad:
        raise ConfigError(f"invalid value alphas={args.alphas}: every alpha must be in [0, 1] (not {bad})")
    if args.initial and args.initial_model:
        raise ConfigError("initial and initial_model: give one of them")
    if args.initial_pretrained and not args.initial_model:
        raise ConfigError("initial_pretrained needs initial_model (the model the weights are for)")


def run_of(finetuned: str) -> Path:
    """The run directory holding (or being) the fine-tuned weights: the nearest config.yaml up."""
    path = Path(finetuned)
    for run in (path, *path.parents):
        if (run / "config.yaml").is_file():
            return run
    raise ConfigError(f"finetuned={finetuned}: no run config.yaml in it or above it, so the initial weights "
                      "are unknown; give initial=... or initial_model=...")


def output_dir(args: WiseFtCommand) -> Path:
    if args.out:
        return Path(args.out)
    path = Path(args.finetuned)
    if path.is_file():  # a trainer.pt: beside it
        path = path.parent
    return path / "wise_ft"


def run(args: WiseFtCommand):
    check(args)
    given_initial = bool(args.initial or args.initial_model)
    start = None if given_initial else run_of(args.finetuned)
    cfg = command_eval_config(args)
    benchmarks = args.benchmarks or list(cfg.benchmarks)
    out = output_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    ft, pre, tok, ft_desc = load(args.finetuned)
    if given_initial:
        init, _, _, init_desc = load(args.initial, args.initial_model, args.initial_pretrained)
    else:
        init, _, _, init_desc = initial_of(start)
    theta0, theta1 = init.state_dict(), {k: v.clone() for k, v in ft.state_dict().items()}
    sweep = {}
    for a in sorted(args.alphas):
        ft.load_state_dict(interpolate(theta0, theta1, a))
        sweep[a] = evaluate(ft, pre, tok, cfg, benchmarks, args.data_root)
        print(f"[wise_ft] alpha={a:.2f} " + " ".join(f"{k}={v:.1f}" for k, v in sweep[a].items()
                                                      if not is_count(k) and "mean" in k), flush=True)
    (out / "wise_ft.json").write_text(json.dumps({"finetuned": ft_desc, "initial": init_desc,
                                                  "sweep": {str(a): r for a, r in sweep.items()}}, indent=2))
    keys = [k for k in sweep[min(sweep)] if not is_count(k)]
    lines = [f"WiSE-FT: initial = {init_desc}, fine-tuned = {ft_desc}", "",
             "| metric | " + " | ".join(f"α={a:g}" for a in sorted(sweep)) + " |",
             "| --- |" + " ---: |" * len(sweep)]
    lines += [f"| {k} | " + " | ".join(f"{sweep[a][k]:.1f}" for a in sorted(sweep)) + " |" for k in keys]
    (out / "wise_ft.md").write_text("\n".join(lines) + "\n")
    plot(sweep, out / "wise_ft.png")
    print("\n".join(lines))
    print(f"[wise_ft] wrote {out}/wise_ft.{{json,md,png}}")
    return sweep


main = command(WiseFtCommand, run, prog="hnclip-wise-ft", doc=__doc__, check=check)


if __name__ == "__main__":
    main()
