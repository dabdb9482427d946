"""The zero-shot trade-off of SPEC's fine-tuning, and what weight interpolation buys back:
WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models", 2022) between the
pre-trained model and each fine-tuned one, theta(alpha) = (1 - alpha) theta_base + alpha theta_ft."""
from pathlib import Path

from . import stats
from .skill_dynamics import SPEC_SKILLS

ALPHAS = [round(0.1 * i, 1) for i in range(11)]


def points(variant, base, finetuned, data, out_dir, limit, alphas=ALPHAS):
    return [{"kind": "wise", "path": str(base), "finetuned": str(finetuned), "alpha": a,
             "variant": variant, "data": str(data), "limit": limit,
             "out": str(Path(out_dir) / f"alpha-{a:.2f}.json")} for a in alphas]


def spec_mean_diff(sets_a, sets_b):
    """Mean over the twelve subset/direction figures of a - b, with its s.e. (paired per set;
    the twelve figures come from disjoint sets, so their errors add in quadrature)."""
    diffs = [stats.paired(sets_a[k], sets_b[k]) for k in SPEC_SKILLS]
    n = len(diffs)
    return sum(d for d, _ in diffs) / n, sum(se ** 2 for _, se in diffs) ** 0.5 / n


def analyse(point_docs):
    """point_docs: the point files of one variant's sweep. -> curve and the answers."""
    docs = sorted(point_docs, key=lambda p: p["point"]["alpha"])
    base, ft = docs[0], docs[-1]
    if base["point"]["alpha"] != 0.0 or ft["point"]["alpha"] != 1.0:
        raise ValueError("a WiSE-FT sweep needs alpha 0 and alpha 1")
    curve = []
    for p in docs:
        sc = p["scores"]
        spec = sum(sc[k] for k in SPEC_SKILLS) / len(SPEC_SKILLS)
        d_spec, se_spec = spec_mean_diff(p["sets"], base["sets"])
        d_zs, se_zs = stats.paired(p["sets"]["zeroshot"], base["sets"]["zeroshot"])
        curve.append({"alpha": p["point"]["alpha"], "spec_mean": spec, "zeroshot": sc["zeroshot/acc"],
                      "spec_gain": d_spec, "spec_gain_se": se_spec,
                      "zeroshot_change": d_zs, "zeroshot_change_se": se_zs})
    full = curve[-1]
    # the largest alpha whose zero-shot is not significantly below the base's
    safe = [c for c in curve if c["zeroshot_change"] > -stats.Z95 * c["zeroshot_change_se"]]
    best_spec = max(curve, key=lambda c: c["spec_mean"])
    out = {"curve": curve, "best_spec_alpha": best_spec["alpha"],
           "zeroshot_cost": {"diff": full["zeroshot_change"], "se": full["zeroshot_change_se"]}}
    if safe:
        s = max(safe, key=lambda c: c["alpha"])
        kept = s["spec_gain"] / full["spec_gain"] if full["spec_gain"] else float("nan")
        out["safe"] = {"alpha": s["alpha"], "spec_gain": s["spec_gain"], "spec_gain_se": s["spec_gain_se"],
                       "zeroshot_change": s["zeroshot_change"], "zeroshot_change_se": s["zeroshot_change_se"],
                       "share_of_gain_kept": kept}
    return out
