"""Training dynamics of skills (after Bugliarello et al., "Measuring Progress in Fine-grained
Vision-and-Language Understanding", 2023): each skill's score at every evaluated step, one
curve per skill (PNG), Kendall tau-b between every two skills across the evaluation points, and
a markdown report.

    python -m train.dynamics run_dir=RUN                     # from RUN/metrics.jsonl's eval history
    python -m train.dynamics run_dir=RUN checkpoints=true    # evaluate RUN/checkpoints/step-* first
    python -m train.dynamics run_dir=RUN checkpoints=true eval=demo skills='mean|top1|R@1$'

With checkpoints=true the benchmarks and their options are the run's eval config (or
conf/eval/<eval>.yaml); `suites.<name>.<key>=...`, `batch_size=` and `spec_root=` override it, as
for train.evaluate. Writes RUN/dynamics/{skills.png, report.md, history.json} (or into `out`)."""
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from hn_data.cli import REQUIRED, ConfigError, command, setting

from .contract import is_count

# sub-task figures a report would drown in; per-subset SPEC figures are kept (they are the skills)
HIDDEN = re.compile(r"(^|/)(micro)/|eval_time")


def history_from_metrics(run_dir):
    """{step: {"<benchmark>/<metric>": value}} from the run's metrics.jsonl eval rows."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a run directory?")
    hist = {}
    for n, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{path}: line {n + 1} is not JSON") from None
        vals = {k[5:]: v for k, v in row.items() if k.startswith("eval/") and isinstance(v, (int, float))}
        if vals:
            hist.setdefault(int(row["step"]), {}).update(vals)
    return dict(sorted(hist.items()))


def skills_of(hist, pattern=None):
    keys = sorted({k for v in hist.values() for k in v})
    keep = [k for k in keys if not is_count(k) and not HIDDEN.search(k)]
    if pattern:
        keep = [k for k in keep if re.search(pattern, k)]
    return keep


def kendall_tau(a, b):
    """tau-b (ties handled); NaN when either series is constant (no ranking to correlate)."""
    from scipy.stats import kendalltau
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if len(pairs) < 2 or len({x for x, _ in pairs}) < 2 or len({y for _, y in pairs}) < 2:
        return float("nan")
    return float(kendalltau([x for x, _ in pairs], [y for _, y in pairs]).statistic)


def series(hist, skill):
    return [hist[s].get(skill) for s in hist]


def tau_matrix(hist, skills):
    return {a: {b: kendall_tau(series(hist, a), series(hist, b)) for b in skills} for a in skills}


def plot(hist, skills, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = {}
    for k in skills:
        # one panel per benchmark and direction/metric: spec i2t, spec t2i, spec cls, ...
        bench, metric = k.split("/")[0], k.split("/")[-1]
        groups.setdefault(f"{bench} {metric}", []).append(k)
    n = len(groups)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    steps = list(hist)
    for ax, (title, keys) in zip(axes.flat, groups.items()):
        for k in keys:
            ys = series(hist, k)
            pts = [(s, y) for s, y in zip(steps, ys) if y is not None]
            label = "/".join(k.split("/")[1:-1]) or k
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3,
                    lw=2.2 if label.startswith(("mean", "avg")) else 1.2, label=label)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def markdown(hist, skills, taus, png_name):
    steps = list(hist)
    lines = [f"# Skill dynamics over {len(steps)} evaluations (steps {steps[0]}–{steps[-1]})", "",
             f"![skills]({png_name})", "", "| skill | first | last | best (step) | change |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for k in skills:
        pts = [(s, y) for s, y in zip(steps, series(hist, k)) if y is not None]
        if not pts:
            continue
        best = max(pts, key=lambda p: p[1])
        lines.append(f"| {k} | {pts[0][1]:.1f} | {pts[-1][1]:.1f} | {best[1]:.1f} ({best[0]}) | "
                     f"{pts[-1][1] - pts[0][1]:+.1f} |")
    short = {k: f"s{n}" for n, k in enumerate(skills)}
    lines += ["", "Kendall τ-b between skills across the evaluations (— : a constant series).", "",
              "| | " + " | ".join(short[k] for k in skills) + " |", "| --- |" + " ---: |" * len(skills)]
    for a in skills:
        cells = ["—" if taus[a][b] != taus[a][b] else f"{taus[a][b]:+.2f}" for b in skills]
        lines.append(f"| {short[a]} {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(run_dir, hist=None, pattern=None, out=None):
    run_dir = Path(run_dir)
    hist = hist if hist is not None else history_from_metrics(run_dir)
    if len(hist) < 2:
        raise ValueError(f"{run_dir}: {len(hist)} evaluation(s) found; dynamics need at least 2 "
                         "(set eval.every_steps, or give checkpoints=true)")
    skills = skills_of(hist, pattern)
    if not skills:
        raise ValueError(f"{run_dir}: no skill matches {pattern!r}")
    out = Path(out or run_dir / "dynamics")
    png = plot(hist, skills, out / "skills.png")
    taus = tau_matrix(hist, skills)
    (out / "report.md").write_text(markdown(hist, skills, taus, png.name))
    (out / "history.json").write_text(json.dumps({"history": hist, "kendall_tau": taus}, indent=1))
    return {"png": png, "report": out / "report.md", "skills": skills, "tau": taus}


def history_from_checkpoints(run_dir, benchmarks=None, overrides=(), eval_name=None):
    """Evaluate every trainer checkpoint of the run with the run's eval config (or
    conf/eval/<eval_name>), `overrides` over it: a dotlist or a mapping (suites, batch_size, ...)."""
    from omegaconf import OmegaConf

    from .. import checkpoint as ckpt
    from .evaluate import evaluate
    from .load import eval_config, load, run_config
    cfg = run_config(run_dir)
    extra = (OmegaConf.create(dict(overrides)) if isinstance(overrides, dict) or OmegaConf.is_dict(overrides)
             else OmegaConf.from_dotlist(list(overrides)))
    ecfg = (OmegaConf.merge(eval_config(eval_name), extra) if eval_name else
            OmegaConf.merge(eval_config("default"), cfg.eval, extra))
    points = [(int(p.name.split("-")[1]), p) for p in ckpt.checkpoints(run_dir)]
    if not points:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no step-*/trainer.pt to evaluate")
    hist = {}
    for step, path in points:
        model, pre, tok, _ = load(str(path))
        hist[step] = evaluate(model, pre, tok, ecfg, benchmarks or list(ecfg.benchmarks), cfg.data.root)
    return hist


# the keys that only mean something when the checkpoints are evaluated
EVAL_KEYS = ("benchmarks", "eval", "suites", "batch_size", "spec_root")


@dataclass
class DynamicsCommand:
    run_dir: str = setting(REQUIRED, "the training run directory (metrics.jsonl, config.yaml, checkpoints/)")
    checkpoints: bool = setting(False, "evaluate the run's checkpoints/step-* instead of reading the eval "
                                "history in metrics.jsonl")
    benchmarks: Optional[List[str]] = setting(None, "with checkpoints=true: suite names (default: the eval "
                                              "config's)")
    eval: Optional[str] = setting(None, "with checkpoints=true: conf/eval/<name>.yaml or a YAML path instead "
                                  "of the run's eval config")
    suites: Dict[str, Any] = setting({}, "with checkpoints=true: per-suite options over the eval config, "
                                     "e.g. suites.spec.root=...")
    batch_size: Optional[int] = setting(None, "with checkpoints=true; default: the eval config's")
    spec_root: Optional[str] = setting(None, "with checkpoints=true; default: the eval config's")
    skills: Optional[str] = setting(None, "regex selecting skills, e.g. 'spec/.*/i2t|cls' (default: all)")
    out: Optional[str] = setting(None, "output dir (default: <run_dir>/dynamics)")


def check(args: DynamicsCommand):
    if not Path(args.run_dir).is_dir():
        raise ConfigError(f"run_dir={args.run_dir}: no such directory")
    if not args.checkpoints:
        given = [k for k in EVAL_KEYS if getattr(args, k) not in (None, {})]
        if given:
            raise ConfigError(f"{', '.join(given)}: only with checkpoints=true (without it the report reads "
                              "the evaluations the run logged; select among them with skills=REGEX)")
    if args.skills is not None:
        try:
            re.compile(args.skills)
        except re.error as e:
            raise ConfigError(f"invalid value skills={args.skills!r}: not a regular expression "
                              f"({e})") from None


def run(args: DynamicsCommand):
    check(args)
    extra = {"suites": args.suites}
    extra.update({k: getattr(args, k) for k in ("batch_size", "spec_root") if getattr(args, k) is not None})
    hist = history_from_checkpoints(args.run_dir, args.benchmarks, extra,
                                    args.eval) if args.checkpoints else None
    rep = write_report(args.run_dir, hist, args.skills, args.out)
    print(rep["report"].read_text())
    print(f"[dynamics] wrote {rep['png']} and {rep['report']}")
    return rep


main = command(DynamicsCommand, run, prog="hnclip-dynamics", doc=__doc__, check=check)


if __name__ == "__main__":
    main()
