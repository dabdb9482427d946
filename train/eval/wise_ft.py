"""WiSE-FT (Wortsman et al.): theta(alpha) = (1 - alpha) * theta_initial + alpha * theta_finetuned,
evaluated over a sweep of alpha, so a user can pick the trade-off between fine-grained and
zero-shot scores.

    python -m train.wise_ft outputs/default --alphas 0 0.25 0.5 0.75 1
    python -m train.wise_ft outputs/paper --initial-model ViT-B-32-quickgelu --initial-pretrained openai

The initial weights default to the run's own start (its pretrained weights, or the seeded random
init). Writes <out>/wise_ft.{json,md,png} (default out: RUN/wise_ft)."""
import argparse
import json
from pathlib import Path

import torch

from .contract import is_count
from .evaluate import evaluate
from .load import eval_config, initial_of, load


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("finetuned", help="run dir, export dir or trainer checkpoint")
    ap.add_argument("--initial", default=None,
                    help="checkpoint of the initial weights (default: the run's start)")
    ap.add_argument("--initial-model", default=None)
    ap.add_argument("--initial-pretrained", default=None)
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--eval", default="default")
    ap.add_argument("--benchmarks", nargs="*", default=None)
    ap.add_argument("--data-root", default="data/default")
    ap.add_argument("--out", default=None)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    if any(not 0.0 <= a <= 1.0 for a in args.alphas):
        raise SystemExit("wise_ft: every alpha must be in [0, 1]")

    ft, pre, tok, ft_desc = load(args.finetuned)
    if args.initial or args.initial_model:
        init, _, _, init_desc = load(args.initial, args.initial_model, args.initial_pretrained)
    else:
        run = Path(args.finetuned)
        if not (run / "config.yaml").is_file():
            run = next(p for p in run.parents if (p / "config.yaml").is_file())
        init, _, _, init_desc = initial_of(run)
    theta0, theta1 = init.state_dict(), {k: v.clone() for k, v in ft.state_dict().items()}
    cfg = eval_config(args.eval, args.overrides)
    benchmarks = args.benchmarks or list(cfg.benchmarks)
    sweep = {}
    for a in sorted(args.alphas):
        ft.load_state_dict(interpolate(theta0, theta1, a))
        sweep[a] = evaluate(ft, pre, tok, cfg, benchmarks, args.data_root)
        print(f"[wise_ft] alpha={a:.2f} " + " ".join(f"{k}={v:.1f}" for k, v in sweep[a].items()
                                                      if not is_count(k) and "mean" in k), flush=True)
    out = Path(args.out or Path(args.finetuned) / "wise_ft")
    out.mkdir(parents=True, exist_ok=True)
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


if __name__ == "__main__":
    main()
