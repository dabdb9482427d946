"""The statistics the science report rests on: paired differences between models scored on the
same held-out sets, their standard error over sets and over fine-tuning seeds, rank correlation
with p-values, and the verdict of a claim given its uncertainty."""
import math
from statistics import mean, stdev

Z95 = 1.96


def se_of_mean(xs):
    return stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan")


def paired(a, b):
    """Mean and standard error (over units: sets, or zero-shot images) of a - b, both lists of
    per-unit scores in the same order, in percentage points."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison of {len(a)} and {len(b)} units: not the same sets")
    d = [100 * (x - y) for x, y in zip(a, b)]
    return mean(d), se_of_mean(d)


def seeded_difference(runs, base):
    """Difference of a fine-tuned row (several seeds, each a per-unit list) from the base (one
    per-unit list). Two sources of uncertainty: the held-out units (paired over units, on the
    seed-averaged scores) and the fine-tuning seed (spread of the seeds' own differences).
    Their errors are added in quadrature: slightly conservative, as the seeds' spread already
    holds some unit noise."""
    n = len(runs)
    avg = [sum(r[i] for r in runs) / n for i in range(len(base))]
    d, se_units = paired(avg, base)
    per_seed = [paired(r, base)[0] for r in runs]
    se_seeds = se_of_mean(per_seed) if n > 1 else 0.0
    return {"diff": d, "se_units": se_units, "se_seeds": se_seeds,
            "se": math.sqrt(se_units ** 2 + se_seeds ** 2), "per_seed": per_seed, "n_seeds": n,
            "n_units": len(base)}


def within_band(est, band):
    """Verdict of 'the difference lies within +-band' from a 95 % interval: holds when the
    whole interval is inside the band, fails when it is wholly outside, else undecided."""
    lo, hi = est["diff"] - Z95 * est["se"], est["diff"] + Z95 * est["se"]
    verdict = ("holds" if -band < lo and hi < band else
               "fails" if hi < -band or lo > band else "undecided")
    return {**est, "ci95": [lo, hi], "band": band, "verdict": verdict}


def at_least(est, threshold):
    """Verdict of 'the difference is at least threshold' from a 95 % interval."""
    lo, hi = est["diff"] - Z95 * est["se"], est["diff"] + Z95 * est["se"]
    verdict = "holds" if lo >= threshold else "fails" if hi < threshold else "undecided"
    return {**est, "ci95": [lo, hi], "threshold": threshold, "verdict": verdict}


def kendall(a, b):
    """Kendall tau-b and its two-sided p-value over the points where both series exist; NaN
    when fewer than three points or a series is constant."""
    from scipy.stats import kendalltau
    pts = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if len(pts) < 3 or len({x for x, _ in pts}) < 2 or len({y for _, y in pts}) < 2:
        return float("nan"), float("nan")
    r = kendalltau([x for x, _ in pts], [y for _, y in pts])
    return float(r.statistic), float(r.pvalue)


def holm(pvalues):
    """Holm-Bonferroni adjusted p-values (same order), NaN kept as NaN."""
    idx = sorted((p, i) for i, p in enumerate(pvalues) if p == p)
    out = [float("nan")] * len(pvalues)
    m, running = len(idx), 0.0
    for rank, (p, i) in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def differences(series):
    return [b - a for a, b in zip(series, series[1:])]
