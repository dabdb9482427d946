"""science.md and its figures, from the numbers train.repro.science computed (science.json).

    python -m train.repro.science_report science_json=outputs/repro_mini/science/science.json
    python -m train.repro.science_report science_json=S.json out=docs img_dir=img

With `out` elsewhere, science.json is copied beside the report."""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hn_data.cli import REQUIRED, command, setting

from .report import ROWS, SUBSETS

NAMES = {"pretrain": "pre-training", **{v: label for v, label, *_ in ROWS}}
MODEL_NAMES = {"none": "base", "hn": "+L_hn", "clip": "+L_clip", "both": "+L_clip+λL_hn"}


def pm(x, se, digits=1):
    return f"{x:+.{digits}f} ± {se:.{digits}f}"


def tau(t):
    return "—" if t != t else f"{t:+.2f}"


def pval(p):
    return "—" if p != p else f"{p:.3f}" if p >= 0.001 else "<0.001"


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def panels(plt, dyn, row_keys, size):
    """A grid with one column per run and one row per key: (fig, axes, [(ax, name, run, key)])."""
    names = list(dyn)
    fig, axes = plt.subplots(len(row_keys), len(names), figsize=(size[0] * len(names), size[1]),
                             squeeze=False)
    return fig, axes, [(axes[r][c], name, dyn[name], key) for c, name in enumerate(names)
                       for r, key in enumerate(row_keys)]


def plot_dynamics(dyn, path):
    plt = _plt()
    fig, axes, cells = panels(plt, dyn, ("i2t", "t2i"), (4.2, 6.4))
    for ax, name, res, d in cells:
        steps, hist = res["steps"], res["history"]
        for s in SUBSETS:
            ax.plot(steps, [hist[str(t)][f"{s}/{d}"] for t in steps], marker="o", ms=2.5, lw=1.2, label=s)
        ax.plot(steps, [hist[str(t)]["zeroshot"] for t in steps], "k--", lw=1.5, label="zero-shot")
        if "in_set" in res["skills"]:
            pts = [(t, hist[str(t)].get("in_set")) for t in steps]
            pts = [(t, y) for t, y in pts if y is not None]
            ax.plot([t for t, _ in pts], [y for _, y in pts], "k:", lw=1.5, label="in-set")
        ax.set_title(f"{NAMES[name]}: SPEC {d.upper()}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_tau(dyn, path):
    plt = _plt()
    import numpy as np
    fig, axes, cells = panels(plt, dyn, ("levels", "changes"), (3.6, 7))
    for ax, name, res, what in cells:
        skills = res["skills"]
        m = np.full((len(skills), len(skills)), np.nan)
        for r in res["correlations"][what]:
            i, j = skills.index(r["a"]), skills.index(r["b"])
            m[i, j] = m[j, i] = r["tau"]
        np.fill_diagonal(m, 1.0)
        im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
        short = [s.replace("absolute", "abs").replace("relative", "rel") for s in skills]
        ax.set_xticks(range(len(skills)), short, rotation=90, fontsize=5)
        ax.set_yticks(range(len(skills)), short, fontsize=5)
        ax.set_title(f"{NAMES[name]}: τ of {what}", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.5)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def layer_rows(summary, model, task, head="linear"):
    rows = {k.split("/")[2]: v for k, v in summary.get(model, {}).items()
            if k.startswith(f"{task}/{head}/")}
    order = sorted((k for k in rows if k.isdigit()), key=int) + [k for k in rows if not k.isdigit()]
    return [(k, rows[k]) for k in order]


def tasks_of(summary):
    return sorted({k.split("/")[0] for m in summary.values() for k in m})


def plot_probes(pr, path):
    plt = _plt()
    summary = pr["summary"]
    tasks = tasks_of(summary)
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for m in MODEL_NAMES:
            rows = layer_rows(summary, m, task)
            ax.errorbar(range(len(rows)), [v["mean"] for _, v in rows], yerr=[v["se"] for _, v in rows],
                        marker="o", ms=3, capsize=2, label=MODEL_NAMES[m])
            ax.set_xticks(range(len(rows)), [k for k, _ in rows])
        joint = layer_rows(summary, "none+joint", task)
        if joint:
            x = len(layer_rows(summary, "none", task)) - 1
            ax.errorbar([x], [joint[0][1]["mean"]], yerr=[joint[0][1]["se"]], fmt="k*", ms=9,
                        label="base, joint (control)")
        chance = layer_rows(summary, "chance", task, head="-")
        if chance:
            ax.axhline(chance[0][1]["mean"], color="gray", ls=":", label="chance")
        ax.set_title(f"{task}: frozen linear probe by layer", fontsize=9)
        ax.set_xlabel("layer (resblock; final = CLIP embedding)")
        ax.set_ylabel("test score (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_wise(wise, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for v, res in wise.items():
        xs = [c["zeroshot"] for c in res["curve"]]
        ys = [c["spec_mean"] for c in res["curve"]]
        ax.plot(xs, ys, marker="o", ms=3, label=MODEL_NAMES[v])
        for c in res["curve"]:
            if c["alpha"] in (0.0, 0.5, 1.0):
                ax.annotate(f"α={c['alpha']:g}", (c["zeroshot"], c["spec_mean"]), fontsize=6)
    ax.set_xlabel("object zero-shot top-1 (%)")
    ax.set_ylabel("SPEC mean of I2T and T2I (%)")
    ax.set_title("WiSE-FT: base (α=0) to fine-tuned (α=1)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def dynamics_section(dyn):
    lines = ["## 1. Do fine-grained skills improve steadily, and do related skills move together?", ""]
    lines += answer_dynamics(dyn) + ["", "![skill curves](science_dynamics.png)", "",
                                     "![Kendall tau between skills](science_tau.png)", ""]
    for name, res in dyn.items():
        steps = res["steps"]
        lines += [f"### {NAMES[name]} ({len(steps)} points, steps {steps[0]}–{steps[-1]})",
                  "", "| skill | first | last | best | trend τ (p) | significant rises / drops | character |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for k in res["skills"]:
            c = res["character"][k]
            lines.append(f"| {k} | {c['first']:.1f} | {c['last']:.1f} | {c['best']:.1f} | "
                         f"{tau(c['trend_tau'])} ({pval(c['trend_p'])}) | {c['significant_rises']} / "
                         f"{c['significant_drops']} | {c['character']} |")
        lines += ["", "| skill pairs | across checkpoints | median τ | significant (Holm, p < 0.05) |",
                  "| --- | --- | ---: | ---: |"]
        for what in ("levels", "changes"):
            for g, s in res["summary"][what].items():
                lines.append(f"| {g} | {what} | {tau(s['median_tau'])} | {s['significant']} / {s['n']} |")
        lines.append("")
    return lines


def answer_dynamics(dyn):
    out = []
    for name, res in dyn.items():
        chars = [res["character"][k]["character"] for k in res["skills"] if "/" in k]
        counts = {c: chars.count(c) for c in dict.fromkeys(chars)}
        lv, ch = res["summary"]["levels"], res["summary"]["changes"]
        out.append(f"- **{NAMES[name]}**: of the 12 SPEC skills, " +
                   ", ".join(f"{n} {c}" for c, n in counts.items()) +
                   f". Related pairs: median τ {tau(lv['related']['median_tau'])} on levels "
                   f"({lv['related']['significant']}/{lv['related']['n']} significant after Holm) "
                   f"vs {tau(lv['other']['median_tau'])} for other pairs; on step-to-step changes "
                   f"{tau(ch['related']['median_tau'])} vs {tau(ch['other']['median_tau'])} "
                   f"({ch['related']['significant']}/{ch['related']['n']} and "
                   f"{ch['other']['significant']}/{ch['other']['n']} significant).")
    return out


def probes_section(pr):
    summary = pr["summary"]
    lines = ["## 2. Is spatial information in the frozen image features, and does L_hn put it there?", ""]
    lines += answer_probes(pr) + ["", "![probe scores by layer](science_probes.png)", ""]
    models = [m for m in (*MODEL_NAMES, "none+joint") if m in summary]
    for task in tasks_of(summary):
        keys = sorted({k for m in models for k in summary[m] if k.startswith(task + "/")})
        lines += [f"### {task}", "", "| probe (head / layer) | " +
                  " | ".join(MODEL_NAMES.get(m, "base, joint (control)") for m in models) + " |",
                  "| --- |" + " ---: |" * len(models)]
        for k in keys:
            cells = [f"{summary[m][k]['mean']:.1f} ± {summary[m][k]['se']:.1f}" if k in summary[m] else ""
                     for m in models]
            lines.append(f"| {'/'.join(k.split('/')[1:])} | " + " | ".join(cells) + " |")
        ch = layer_rows(summary, "chance", task, head="-")
        if ch:
            lines.append(f"| chance (majority label / mean box) | {ch[0][1]['mean']:.1f} |"
                         + " |" * (len(models) - 1))
        lines.append("")
    return lines


def answer_probes(pr):
    out = []
    for m, diffs in pr["vs_base"].items():
        ups = [k for k, d in diffs.items() if d["decided"] and d["diff"] > 0]
        downs = [k for k, d in diffs.items() if d["decided"] and d["diff"] < 0]
        biggest = max(diffs.items(), key=lambda kv: abs(kv[1]["diff"]), default=None)
        s = (f"- **{MODEL_NAMES[m]} vs base**: {len(ups)} of {len(diffs)} frozen probes significantly "
             f"higher, {len(downs)} lower")
        if biggest:
            s += f"; largest change {biggest[0]} {pm(biggest[1]['diff'], biggest[1]['se'])} points"
        out.append(s + (f" (higher: {', '.join(ups)})" if ups else "") + ".")
    j = pr.get("joint_vs_frozen", {})
    if j:
        out.append("- **Control** (base tower trained jointly with a linear probe, vs the frozen "
                   "linear probe at the same layer): " +
                   "; ".join(f"{k.split('/')[0]} {pm(d['diff'], d['se'])}" for k, d in j.items()) + ".")
    return out


def wise_section(wise):
    lines = ["## 3. How much zero-shot does fine-tuning cost, and does WiSE-FT buy it back?", ""]
    for v, res in wise.items():
        c = res["zeroshot_cost"]
        s = (f"- **{MODEL_NAMES[v]}**: at α = 1 zero-shot changes by {pm(c['diff'], c['se'])} points "
             f"(paired over the zero-shot images) and SPEC mean by "
             f"{pm(res['curve'][-1]['spec_gain'], res['curve'][-1]['spec_gain_se'])}")
        safe = res.get("safe")
        if safe and safe["alpha"] < 1.0:
            s += (f"; the largest α whose zero-shot is not significantly below the base is {safe['alpha']:g} "
                  f"(zero-shot {pm(safe['zeroshot_change'], safe['zeroshot_change_se'])}), where "
                  f"{100 * safe['share_of_gain_kept']:.0f} % of the SPEC gain is kept "
                  f"({pm(safe['spec_gain'], safe['spec_gain_se'])})")
        elif safe:
            s += "; zero-shot is not significantly below the base at any α, so there is nothing to buy back"
        s += f"; SPEC mean peaks at α = {res['best_spec_alpha']:g}."
        lines.append(s)
    lines += ["", "![WiSE-FT trade-off](science_wise.png)", "",
              "| α | " + " | ".join(f"{MODEL_NAMES[v]} SPEC / zero-shot" for v in wise) + " |",
              "| ---: |" + " ---: |" * len(wise)]
    alphas = [c["alpha"] for c in next(iter(wise.values()))["curve"]]
    for i, a in enumerate(alphas):
        cells = [f"{wise[v]['curve'][i]['spec_mean']:.1f} / {wise[v]['curve'][i]['zeroshot']:.1f}"
                 for v in wise]
        lines.append(f"| {a:g} | " + " | ".join(cells) + " |")
    return lines + [""]


def margins_section(mg):
    lines = ["## 4. The reproduction's claims with their uncertainty", "",
             "Each fine-tuned row against the base on the same held-out sets (paired), averaged over "
             "the fine-tuning seeds; s.e. of the held-out units and of the seeds added in quadrature; "
             "decided from the 95 % interval.", "",
             "| claim | estimate | s.e. (sets / seeds) | 95 % interval | per seed | verdict |",
             "| --- | ---: | ---: | ---: | --- | --- |"]
    for k, e in mg.items():
        rule = f"within ±{e['band']:g}" if "band" in e else f"≥ {e['threshold']:g}"
        lines.append(f"| {k} ({rule}) | {e['diff']:+.2f} | {e['se']:.2f} ({e['se_units']:.2f} / "
                     f"{e['se_seeds']:.2f}) | [{e['ci95'][0]:+.2f}, {e['ci95'][1]:+.2f}] | "
                     f"{', '.join(f'{x:+.1f}' for x in e['per_seed'])} | **{e['verdict']}** |")
    return lines + [""]


def write(result, out_dir, note="", img_dir=""):
    """Writes <out_dir>/science.md, its figures in <out_dir>/<img_dir>."""
    out = Path(out_dir)
    img = out / img_dir
    img.mkdir(parents=True, exist_ok=True)
    link = (img_dir.rstrip("/") + "/") if img_dir else ""
    s = result["settings"]
    lines = ["# The three papers' questions on the miniature reproduction", "",
             (note or "Made by `launch/science_mini.sh`.") +
             (f" Science stages: {s['seconds'] / 60:.0f} min." if "seconds" in s else ""), "",
             f"Every number below is in `science.json` beside this file. Repeated evaluations "
             f"(dynamics, WiSE-FT) use the first {s['limit']} held-out sets of each SPEC subset; "
             f"probes use seeds {', '.join(map(str, s['probe_seeds']))}"
             + (f", the jointly trained control seed {', '.join(map(str, s['joint_seeds']))}"
                if s.get("joint_seeds") else "") + ".", ""]
    if "dynamics" in result:
        plot_dynamics(result["dynamics"], img / "science_dynamics.png")
        plot_tau(result["dynamics"], img / "science_tau.png")
        lines += dynamics_section(result["dynamics"])
    if "probes" in result:
        plot_probes(result["probes"], img / "science_probes.png")
        lines += probes_section(result["probes"])
    if "wise" in result:
        plot_wise(result["wise"], img / "science_wise.png")
        lines += wise_section(result["wise"])
    if "margins" in result:
        lines += margins_section(result["margins"])
    path = out / "science.md"
    path.write_text(("\n".join(lines) + "\n").replace("](science_", f"]({link}science_"))
    return path


@dataclass
class ScienceReportCommand:
    science_json: str = setting(REQUIRED, "the science.json train.repro.science wrote")
    out: Optional[str] = setting(None, "default: the folder of science.json")
    img_dir: str = setting("", "figures' folder, relative to out")
    note: Optional[str] = setting(None, "default: the note the run wrote")


def run(args: ScienceReportCommand):
    src = Path(args.science_json)
    result = json.loads(src.read_text())
    out = Path(args.out) if args.out else src.parent
    out.mkdir(parents=True, exist_ok=True)
    if (out / "science.json").resolve() != src.resolve():
        (out / "science.json").write_text(src.read_text())
    md = write(result, out, note=args.note or result["settings"].get("note", ""), img_dir=args.img_dir)
    print(md)
    return md


main = command(ScienceReportCommand, run, prog="hnclip-repro-science-report", doc=__doc__)


if __name__ == "__main__":
    main()
