"""The probing report, rebuilt from results.json alone:

- Table 1's shape: task x (frozen / unfrozen backbone), validation and test, linear probe;
- Table 3's shape: probe depth (1, 2, 4 weight layers) on frozen features;
- Table 2's shape: per-category scores (VSR per relation, RCM per cell, boxes per class);
- Table 5's shape: Kendall tau of per-category box scores with the number of training
  examples, the mean box area and the mean distance of the box from the image centre;
- per-layer curves (frozen linear probe), as a table and a PNG."""
import json
from pathlib import Path

from scipy.stats import kendalltau

TASK_TITLES = {"boxes": "Boxes (Acc@0.5)", "vsr": "VSR", "rcm": "RCM"}
MODE_MARK = {"frozen": "❄️", "unfrozen": "🔥"}


def _pct(v):
    return "-" if v is None else f"{100 * v:.2f}"


def _find(results, **kw):
    for r in results:
        if all(str(r.get(k)) == str(v) for k, v in kw.items()):
            return r
    return None


def layer_order(layers):
    return sorted(set(layers), key=lambda layer: (layer == "final", int(layer) if layer != "final" else 0))


def table1(res, tasks, label, main_layer):
    head = "| Model | " + " | ".join(f"{TASK_TITLES.get(t, t)} val | {TASK_TITLES.get(t, t)} test"
                                    for t in tasks) + " |"
    lines = [head, "|" + " --- |" * (1 + 2 * len(tasks))]
    rows = [("chance", "Chance (majority label / mean train box)", None)]
    rows += [(m, f"{MODE_MARK[m]} {label}", "linear") for m in ("frozen", "unfrozen")]
    for mode, name, head_kind in rows:
        cells = []
        for t in tasks:
            r = _find(res, task=t, mode=mode,
                      **({"head": head_kind, "layer": main_layer} if head_kind else {}))
            cells += [_pct(r and r["val"]), _pct(r and r["test"])]
        if any(c != "-" for c in cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table3(res, tasks, label, main_layer):
    lines = ["| Model | #Layers | " + " | ".join(TASK_TITLES.get(t, t) + " test" for t in tasks) + " |",
             "|" + " --- |" * (2 + len(tasks))]
    for head, n in (("linear", 1), ("mlp2", 2), ("mlp4", 4)):
        cells = [_pct((_find(res, task=t, mode="frozen",
                             head=head, layer=main_layer) or {}).get("test")) for t in tasks]
        if any(c != "-" for c in cells):
            lines.append(f"| ❄️ {label} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_category_table(res, task, main_layer):
    runs = [r for m in ("frozen", "unfrozen") if (r := _find(res, task=task, mode=m, head="linear",
                                                             layer=main_layer))]
    if not runs:
        return ""
    cats = sorted({c for r in runs for c in r["per_category"]})
    lines = ["| Mode | " + " | ".join(cats) + " |", "|" + " --- |" * (1 + len(cats))]
    for r in runs:
        cells = " | ".join(_pct(r["per_category"].get(c)) for c in cats)
        lines.append(f"| {MODE_MARK[r['mode']]} | {cells} |")
    return "\n".join(lines)


def kendall_rows(res, stats, task, main_layer):
    """[(mode, factor, tau, p, n categories)]"""
    out = []
    for mode in ("frozen", "unfrozen"):
        r = _find(res, task=task, mode=mode, head="linear", layer=main_layer)
        if not r:
            continue
        cats = [c for c in r["per_category"] if c in stats]
        score = [r["per_category"][c] for c in cats]
        for factor in ("n_train", "area", "distance"):
            xs = [stats[c][factor] for c in cats]
            if len(cats) < 3 or any(x is None for x in xs):
                continue
            tau, p = kendalltau(score, xs)
            out.append((mode, factor, float(tau), float(p), len(cats)))
    return out


def kendall_table(rows):
    names = {"n_train": "# examples (train)", "area": "Area (test)", "distance": "Distance (test)"}
    modes = dict.fromkeys(r[0] for r in rows)
    lines = ["| Factor | " + " | ".join(f"{MODE_MARK[m]} tau (p)" for m in modes) + " |"]
    modes = list(dict.fromkeys(r[0] for r in rows))
    lines.append("|" + " --- |" * (1 + len(modes)))
    for f in ("n_train", "area", "distance"):
        cells = []
        for m in modes:
            hit = [r for r in rows if r[0] == m and r[1] == f]
            cells.append("-" if not hit or hit[0][2] != hit[0][2] else f"{hit[0][2]:+.2f} ({hit[0][3]:.2f})")
        lines.append(f"| {names[f]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def layer_curves(res, tasks):
    """{task: [(layer, val, test)]} for the frozen linear probe."""
    out = {}
    for t in tasks:
        runs = {r["layer"]: r for r in res
                if r["task"] == t and r["mode"] == "frozen" and r["head"] == "linear"}
        if len(runs) > 1:
            out[t] = [(layer, runs[layer]["val"], runs[layer]["test"]) for layer in layer_order(runs)]
    return out


def plot_curves(curves, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    for t, pts in curves.items():
        xs = list(range(len(pts)))
        line, = ax.plot(xs, [100 * p[2] for p in pts], marker="o", label=f"{TASK_TITLES.get(t, t)} test")
        ax.plot(xs, [100 * p[1] for p in pts], ls="--", color=line.get_color(), alpha=0.6)
        ax.set_xticks(xs, [p[0] for p in pts])
    ax.set_xlabel("image-tower layer (resblock output; final = CLIP embedding)")
    ax.set_ylabel("score (%) — dashed: validation")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def build(results_doc, out_dir, png_name="probe_layers.png"):
    """results_doc: the dict main.py writes to results.json. Writes report.md (+ PNG)."""
    out_dir = Path(out_dir)
    res, meta = results_doc["results"], results_doc["meta"]
    tasks = [t for t in ("boxes", "vsr", "rcm") if any(r["task"] == t for r in res)]
    label, main_layer = meta["label"], meta["main_layer"]
    parts = [f"# Probing report: {label}", "",
             f"Model `{meta['model']}` (pretrained: `{meta['pretrained']}`), features from layer "
             f"`{main_layer}` pooled by `{meta['pooling']}`, statement side `{meta['text']}`; data "
             f"`{meta['data']}`. Examples train/val/test: "
             + ", ".join(f"{t} {'/'.join(str(n) for n in meta['sizes'][t])}" for t in tasks) + ".", "",
             "## Linear probe, frozen vs jointly trained (Table 1 shape)", "",
             table1(res, tasks, label, main_layer), "",
             "## Probe depth, frozen (Table 3 shape)", "", table3(res, tasks, label, main_layer), ""]
    curves = layer_curves(res, tasks)
    if curves:
        plot_curves(curves, out_dir / png_name, f"{label}: frozen linear probe per layer")
        parts += ["## Per-layer curves (frozen linear probe, test; val in brackets)", "",
                  "| Task | " + " | ".join(p[0] for p in next(iter(curves.values()))) + " |",
                  "|" + " --- |" * (1 + len(next(iter(curves.values()))))]
        parts += [f"| {TASK_TITLES.get(t, t)} | " + " | ".join(f"{_pct(p[2])} ({_pct(p[1])})" for p in pts)
                  + " |" for t, pts in curves.items()]
        parts += ["", f"![per-layer curves]({png_name})", ""]
    for t in tasks:
        tab = per_category_table(res, t, main_layer)
        if tab:
            parts += [f"## Per-category test scores, {TASK_TITLES.get(t, t)} (Table 2 shape)", "", tab, ""]
    if "boxes" in tasks:
        rows = kendall_rows(res, results_doc["category_stats"]["boxes"], "boxes", main_layer)
        if rows:
            parts += ["## Kendall tau of per-category box accuracy (Table 5 shape; p-value in brackets)", "",
                      kendall_table(rows), ""]
    parts += ["## Chosen hyper-parameters (best validation)", "",
              "| Task | Mode | Head | Layer | lr | epochs | val | test |", "|" + " --- |" * 8]
    parts += [f"| {r['task']} | {r['mode']} | {r['head']} | {r['layer']} | {r['lr']:.0e} | {r['epoch']} | "
              f"{_pct(r['val'])} | {_pct(r['test'])} |" for r in res if r["mode"] != "chance"]
    text = "\n".join(parts) + "\n"
    (out_dir / "report.md").write_text(text)
    return text


def main(path):
    doc = json.loads(Path(path).read_text())
    print(build(doc, Path(path).parent))


if __name__ == "__main__":
    import sys
    main(sys.argv[1])
