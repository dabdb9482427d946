"""Assemble the scores of the four rows into Table-3-shaped markdown, a per-subset table, the
claim checks and a bar chart.

    python -m train.repro.report scores=DIR out=DIR [note="..."]

DIR holds <variant>.json, or <variant>_s<seed>.json for a variant fine-tuned with several seeds:
those rows show the mean over seeds (claims are checked on it) and each seed's mean accuracy."""
import json
from dataclasses import dataclass
from pathlib import Path

from hn_data.cli import REQUIRED, command, setting

ROWS = [("none", "CLIP (pre-trained, no fine-tuning)", "", ""),
        ("hn", "+ L_hn", "", "✓"),
        ("clip", "+ L_clip", "✓", ""),
        ("both", "+ L_clip + λ·L_hn", "✓", "✓")]
SUBSETS = ["absolute_size", "relative_size", "absolute_spatial", "relative_spatial", "existence", "count"]


def average_seeds(runs):
    """One row from several seeds' score dicts: every figure is the mean over seeds. Its standard
    error over sets is given as the mean of the seeds' (seeds are scored on the same sets, so
    their errors are correlated and dividing by sqrt(n) would overstate the precision); the
    spread between seeds is shown apart, as each seed's mean accuracy."""
    n = len(runs)
    row = {}
    for key in runs[0]:
        if key.startswith("_"):
            continue
        vals = [r[key] for r in runs]
        row[key] = sum(vals) / n
    row["seeds"] = [{"seed": r["_seed"], "mean/i2t": r["mean/i2t"], "mean/t2i": r["mean/t2i"],
                     "zeroshot/acc": r["zeroshot/acc"]} for r in runs]
    return row


def seed_of(path):
    """The seed in a score file's name: <variant>_s<seed>.json."""
    return int(Path(path).stem.rsplit("_s", 1)[1])


def load_scores(folder):
    folder = Path(folder)
    scores = {}
    for v, *_ in ROWS:
        single = folder / f"{v}.json"
        seeded = sorted(folder.glob(f"{v}_s*.json"), key=seed_of)
        if single.is_file() and seeded:
            raise ValueError(f"{folder}: both {single.name} and {seeded[0].name}; keep one layout per "
                             "variant")
        if single.is_file():
            row = json.loads(single.read_text())
            row["seeds"] = []
        elif seeded:
            runs = [{**json.loads(p.read_text()), "_seed": seed_of(p)} for p in seeded]
            row = average_seeds(runs)
        else:
            raise FileNotFoundError(f"missing scores for variant '{v}': {single} or {v}_s<seed>.json")
        scores[v] = row
    return scores


def seed_cell(s):
    if len(s["seeds"]) < 2:
        return "1"
    return f"{len(s['seeds'])}: " + ", ".join(f"{x['mean/i2t']:.1f}/{x['mean/t2i']:.1f}" for x in s["seeds"])


def pm(s, key):
    return f"{s[key]:.1f} ± {s[key + '_se']:.1f}"


def table3(scores):
    lines = ["| config | L_clip | L_hn | SPEC I2T | SPEC T2I | zero-shot | seeds: I2T/T2I of each |",
             "| --- | :-: | :-: | ---: | ---: | ---: | --- |"]
    for v, name, c, h in ROWS:
        s = scores[v]
        lines.append(f"| {name} | {c} | {h} | {pm(s, 'mean/i2t')} | {pm(s, 'mean/t2i')} | "
                     f"{s['zeroshot/acc']:.1f} ± {s['zeroshot/se']:.1f} | {seed_cell(s)} |")
    return "\n".join(lines)


def per_subset(scores):
    head = "| subset (sets) | " + " | ".join(f"{name} I2T | {name} T2I" for _, name, _, _ in ROWS) + " |"
    lines = [head, "| --- |" + " ---: |" * (2 * len(ROWS))]
    for sub in SUBSETS + ["mean"]:
        n = scores["none"].get(f"{sub}/n_sets", "")
        cells = [f"{scores[v][f'{sub}/{d}']:.1f} ± {scores[v][f'{sub}/{d}_se']:.1f}"
                 for v, *_ in ROWS for d in ("i2t", "t2i")]
        lines.append(f"| {sub}{f' ({n})' if n else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claims(scores):
    base, both, clip = scores["none"], scores["both"], scores["clip"]
    out = []

    def check(text, ok):
        out.append(f"- [{'x' if ok else ' '}] {text}")
    for d in ("i2t", "t2i"):
        gain = both[f"mean/{d}"] - base[f"mean/{d}"]
        check(f"combined row beats base by >= 20 points mean SPEC {d.upper()}: {gain:+.1f}", gain >= 20)
    for sub in SUBSETS:
        g = [both[f"{sub}/{d}"] - base[f"{sub}/{d}"] for d in ("i2t", "t2i")]
        check(f"{sub} gains >= 5 points in the combined row: I2T {g[0]:+.1f}, T2I {g[1]:+.1f}", min(g) >= 5)
    for d in ("i2t", "t2i"):
        delta = clip[f"mean/{d}"] - base[f"mean/{d}"]
        check(f"L_clip-only row within 2 points of base, mean SPEC {d.upper()}: {delta:+.1f}",
              abs(delta) <= 2)
    dz = both["zeroshot/acc"] - base["zeroshot/acc"]
    check(f"combined zero-shot within 2 points of base: {dz:+.1f} "
          f"(base {base['zeroshot/acc']:.1f}, chance {base['zeroshot/chance']:.1f})", abs(dz) <= 2)
    return "\n".join(out)


def chart(scores, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=True)
    x = np.arange(len(SUBSETS) + 1)
    w = 0.2
    for ax, d in zip(axes, ("i2t", "t2i")):
        for k, (v, name, *_) in enumerate(ROWS):
            keys = SUBSETS + ["mean"]
            ys = [scores[v][f"{s}/{d}"] for s in keys]
            es = [scores[v][f"{s}/{d}_se"] for s in keys]
            ax.bar(x + (k - 1.5) * w, ys, w, yerr=es, capsize=2, label=name)
        ax.set_xticks(x, [s.replace("_", "\n") for s in SUBSETS] + ["mean"], fontsize=8)
        ax.set_title(f"held-out SPEC {d.upper()} accuracy (%), ± 1 s.e. over sets")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    labels = [f"{label} (mean of {len(scores[v]['seeds'])} seeds)" if len(scores[v]["seeds"]) > 1 else label
              for label, (v, *_) in zip(labels, ROWS)]
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(ROWS))
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)


@dataclass
class ReportCommand:
    scores: str = setting(REQUIRED, "folder holding <variant>.json (or <variant>_s<seed>.json)")
    out: str = setting(REQUIRED, "folder for repro_table.md and repro_chart.png")
    note: str = setting("", "a line saying how the numbers were made")


def run(args: ReportCommand):
    scores = load_scores(args.scores)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chart(scores, out / "repro_chart.png")
    md = (f"# Miniature SPEC Table 3\n\n{args.note}\n\n## Table 3 (mean over the six subsets)\n\n"
          f"{table3(scores)}\n\n## Per subset\n\n{per_subset(scores)}\n\n## Claims\n\n{claims(scores)}\n")
    (out / "repro_table.md").write_text(md)
    print(md)
    return md


main = command(ReportCommand, run, prog="hnclip-repro-report", doc=__doc__, run_dir="${out}")


if __name__ == "__main__":
    main()
