"""Skill dynamics on the reproduction (after Bugliarello et al., "Measuring Progress in
Fine-grained Vision-and-Language Understanding", 2023): the skills at every kept checkpoint of
pre-training and of each fine-tuning, whether each rises steadily or fluctuates, and which
skills move together (Kendall tau-b across checkpoints, on the levels and on the step-to-step
changes, with p-values)."""
import json
from pathlib import Path

from . import stats
from .report import SUBSETS

# skills: the six SPEC subsets in both directions, object zero-shot, in-set accuracy
SPEC_SKILLS = [f"{s}/{d}" for s in SUBSETS for d in ("i2t", "t2i")]
RELATED = [("absolute_size", "relative_size"), ("absolute_spatial", "relative_spatial"),
           ("existence", "count")]


def points_of_run(run_dir, data, out_dir, limit, init=None):
    """Evaluation points of one run: step 0 (the run's start: its seeded init, or `init`, the
    weights a fine-tuning started from) and every kept checkpoint."""
    from train import checkpoint as ckpt
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    found = ckpt.checkpoints(run_dir)
    if not found:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no kept checkpoints (run the reproduction "
                                "with KEEP_CHECKPOINTS > 0)")
    start = ({"kind": "weights", "path": str(init)} if init else
             {"kind": "initial", "path": str(run_dir)})
    pts = [{**start, "step": 0}]
    pts += [{"kind": "checkpoint", "path": str(p), "step": int(p.name.split("-")[1])} for p in found]
    return [{**p, "data": str(data), "limit": limit, "out": str(out_dir / f"step-{p['step']:07d}.json")}
            for p in pts]


def in_set_accuracy(run_dir, steps):
    """Training-set accuracy on the candidate sets (the trainer's hn/acc_*, both directions),
    averaged over the logged rows since the previous checkpoint; None where nothing was logged."""
    path = Path(run_dir) / "metrics.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []
    rows = [r for r in rows if "hn/acc_i2t" in r and "hn/acc_t2i" in r]
    out, prev = {}, 0
    for s in steps:
        win = [r for r in rows if prev < r["step"] <= s]
        out[s] = (100 * sum(r["hn/acc_i2t"] + r["hn/acc_t2i"] for r in win) / (2 * len(win))
                  if win else None)
        prev = s
    return out


def history(point_files, run_dir=None):
    """{step: {skill: value}}, {step: per-set scores} from a run's point files."""
    from .points import read_point
    hist, sets = {}, {}
    for f in point_files:
        p = read_point(f)
        s, sc = p["point"]["step"], p["scores"]
        hist[s] = {k: sc[k] for k in SPEC_SKILLS}
        hist[s]["mean/i2t"], hist[s]["mean/t2i"] = sc["mean/i2t"], sc["mean/t2i"]
        hist[s]["zeroshot"] = sc["zeroshot/acc"]
        sets[s] = p["sets"]
    hist, sets = dict(sorted(hist.items())), dict(sorted(sets.items()))
    if run_dir is not None:
        acc = in_set_accuracy(run_dir, list(hist))
        if any(v is not None for v in acc.values()):
            for s in hist:
                hist[s]["in_set"] = acc[s]
    return hist, sets


def skill_names(hist):
    first = next(iter(hist.values()))
    return SPEC_SKILLS + ["zeroshot"] + (["in_set"] if "in_set" in first else [])


def character(hist, sets, skill):
    """Trend over checkpoints (tau-b of the skill against the step, p) and its significant moves:
    consecutive checkpoints whose paired difference over the held-out sets exceeds 1.96 s.e."""
    steps = [s for s in hist if hist[s].get(skill) is not None]   # in-set: none before training
    ys = [hist[s][skill] for s in steps]
    tau, p = stats.kendall(steps, ys)
    ups = downs = 0
    if skill != "in_set":
        for a, b in zip(steps, steps[1:]):
            d, se = stats.paired(sets[b][skill], sets[a][skill])   # per-set scores share the skill's name
            if se > 0 and abs(d) > stats.Z95 * se:
                ups, downs = ups + (d > 0), downs + (d < 0)
    if p == p and p < 0.05:
        kind = ("rises steadily" if tau > 0 and not downs else "rises, with dips" if tau > 0 else
                "falls steadily" if not ups else "falls, with rebounds")
    else:
        kind = "fluctuates" if ups and downs else "moves once" if ups or downs else "flat"
    return {"trend_tau": tau, "trend_p": p, "significant_rises": ups, "significant_drops": downs,
            "first": ys[0], "last": ys[-1], "best": max(ys),
            "character": kind}


def correlations(hist, skills):
    """Kendall tau-b between every two skills across checkpoints, on the levels and on the
    step-to-step changes (which removes the shared trend of training time), Holm-adjusted."""
    out = {"levels": {}, "changes": {}}
    for what in out:
        pairs, ps = [], []
        for i, a in enumerate(skills):
            for b in skills[i + 1:]:
                ya = [hist[s].get(a) for s in hist]
                yb = [hist[s].get(b) for s in hist]
                if what == "changes":
                    if None in ya or None in yb:
                        continue
                    ya, yb = stats.differences(ya), stats.differences(yb)
                tau, p = stats.kendall(ya, yb)
                pairs.append((a, b, tau, p))
                ps.append(p)
        adj = stats.holm(ps)
        out[what] = [{"a": a, "b": b, "tau": t, "p": p, "p_holm": q}
                     for (a, b, t, p), q in zip(pairs, adj)]
    return out


def related(a, b):
    sa, da = a.split("/") if "/" in a else (a, "")
    sb, db = b.split("/") if "/" in b else (b, "")
    if sa == sb:
        return "same subset, other direction"
    if da == db and ((sa, sb) in RELATED or (sb, sa) in RELATED):
        return "related subsets, same direction"
    return None


def analyse_run(point_files, run_dir=None):
    hist, sets = history(point_files, run_dir)
    skills = skill_names(hist)
    return {"steps": list(hist), "history": hist,
            "character": {k: character(hist, sets, k) for k in skills},
            "correlations": correlations(hist, skills), "skills": skills}


def summary(corr_rows):
    """Median tau and the share significant after Holm, for related and for other pairs."""
    from statistics import median
    groups = {"related": [], "other": []}
    for r in corr_rows:
        if r["tau"] == r["tau"] and r["a"] != "in_set" and r["b"] != "in_set" \
                and "zeroshot" not in (r["a"], r["b"]):
            groups["related" if related(r["a"], r["b"]) else "other"].append(r)
    return {g: {"n": len(rs), "median_tau": median([r["tau"] for r in rs]) if rs else float("nan"),
                "significant": sum(r["p_holm"] < 0.05 for r in rs)} for g, rs in groups.items()}
