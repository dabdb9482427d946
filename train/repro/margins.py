"""The reproduction's claims with their uncertainty: each fine-tuned row against the base on the
same held-out sets (paired), over all its fine-tuning seeds, decided from a 95 % interval."""
import json
from pathlib import Path

from . import stats
from .report import seed_of
from .skill_dynamics import SPEC_SKILLS

BAND = 2.0   # points: "within 2 points of the base"
GAIN = 20.0  # points: "beats the base by >= 20 points"


def load_sets(folder):
    """{variant: [per-seed per-set dicts]} and the base's, from the sets_out= files."""
    folder = Path(folder)
    base = folder / "none.json"
    if not base.is_file():
        raise FileNotFoundError(f"{base} not found: run the reproduction's evaluation with sets_out=")
    rows = {}
    for v in ("hn", "clip", "both"):
        files = sorted(folder.glob(f"{v}_s*.json"), key=seed_of) or sorted(folder.glob(f"{v}.json"))
        if not files:
            raise FileNotFoundError(f"{folder}: no per-set scores for variant '{v}'")
        rows[v] = [json.loads(f.read_text()) for f in files]
    return json.loads(base.read_text()), rows


def mean_difference(runs, base, direction):
    """Seeded difference of the mean over the six subsets in one direction."""
    keys = [k for k in SPEC_SKILLS if k.endswith(direction)]
    per = [stats.seeded_difference([r[k] for r in runs], base[k]) for k in keys]
    n = len(per)
    per_seed = [sum(p["per_seed"][i] for p in per) / n for i in range(len(runs))]
    se_units = sum(p["se_units"] ** 2 for p in per) ** 0.5 / n
    se_seeds = stats.se_of_mean(per_seed) if len(runs) > 1 else 0.0
    return {"diff": sum(p["diff"] for p in per) / n, "se_units": se_units, "se_seeds": se_seeds,
            "se": (se_units ** 2 + se_seeds ** 2) ** 0.5, "per_seed": per_seed, "n_seeds": len(runs),
            "n_units": sum(p["n_units"] for p in per)}


def claims(folder):
    base, rows = load_sets(folder)
    out = {}
    for d in ("i2t", "t2i"):
        out[f"L_clip-only mean SPEC {d.upper()} vs base"] = stats.within_band(
            mean_difference(rows["clip"], base, d), BAND)
        out[f"combined mean SPEC {d.upper()} vs base"] = stats.at_least(
            mean_difference(rows["both"], base, d), GAIN)
    zs = lambda v: stats.seeded_difference([r["zeroshot"] for r in rows[v]], base["zeroshot"])
    out["combined zero-shot vs base"] = stats.within_band(zs("both"), BAND)
    out["L_clip-only zero-shot vs base"] = stats.within_band(zs("clip"), BAND)
    out["L_hn-only zero-shot vs base"] = stats.within_band(zs("hn"), BAND)
    return out
