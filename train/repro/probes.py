"""Probes on the reproduction's models (after Pantazopoulos et al., "Lost in Space: Probing
Fine-grained Spatial Understanding in Vision and Language Resamplers", 2024): the probe command's
frozen-feature probes at every layer of each model's image tower, on generated scenes, over
several seeds; beside them a control, the same probe trained jointly with the tower, which
shows what the architecture can learn to expose when training asks for it."""
import json
import math
from pathlib import Path
from statistics import mean

from . import stats

FROZEN = ["modes=[frozen]", "heads=[linear,mlp2]", "features.curve_layers=all"]
JOINT = ["modes=[unfrozen]", "unfrozen_heads=[linear]", "features.curve_layers=null"]


def unit(model, weights, seed, out_dir, data_dir, joint=False, extra=()):
    name = f"{model}_s{seed}" + ("_joint" if joint else "")
    return {"model": model, "seed": seed, "joint": joint, "name": name,
            "out": str(Path(out_dir) / name),
            "overrides": ["model.name=hnclip-repro", f"model.pretrained={weights}",
                          f"model.label={model}", f"seed={seed}", f"run_name={name}",
                          f"out_dir={Path(out_dir) / name}",
                          f"data.generated.dir={Path(data_dir) / f's{seed}'}",
                          *(JOINT if joint else FROZEN), *extra]}


def run_unit(u):
    """Run one probe configuration through the probe command's own entry (train.probe.main)."""
    out = Path(u["out"]) / "results.json"
    if (Path(u["out"]) / ".complete").is_file():
        return str(out)
    from hydra import compose, initialize_config_dir

    from train.config import conf_dir
    from train.probe.main import probe
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose("probe", overrides=u["overrides"])
    probe(cfg)
    (Path(u["out"]) / ".complete").write_text("")
    return str(out)


def rows_of(doc, mode):
    """{(task, head, layer): (test score, n test items)} of one probe run."""
    sizes = doc["meta"]["sizes"]
    return {(r["task"], r["head"], r["layer"]): (r["test"], sizes[r["task"]][2])
            for r in doc["results"] if r["mode"] == mode}


def combine(scores):
    """Mean over seeds of (score, n) pairs, in %, with an s.e. holding the test items' binomial
    error and the seeds' spread (in quadrature)."""
    ps = [p for p, _ in scores]
    m = mean(ps)
    se_items = math.sqrt(sum(p * (1 - p) / n for p, n in scores)) / len(scores)
    se_seeds = stats.se_of_mean(ps) if len(ps) > 1 else 0.0
    return {"mean": 100 * m, "se": 100 * math.sqrt(se_items ** 2 + se_seeds ** 2),
            "per_seed": [100 * p for p in ps]}


def summarise(unit_docs):
    """unit_docs: [(unit, results doc)]. -> {model: {"task/head/layer": combined}} for the
    frozen probes, the joint control and the chance rows."""
    by = {}
    for u, doc in unit_docs:
        mode = "unfrozen" if u["joint"] else "frozen"
        for key, val in rows_of(doc, mode).items():
            by.setdefault((u["model"] + ("+joint" if u["joint"] else ""), key), []).append(val)
        for key, val in rows_of(doc, "chance").items():
            by.setdefault(("chance", key), []).append(val)
    out = {}
    for (model, (task, head, layer)), vals in sorted(by.items()):
        out.setdefault(model, {})[f"{task}/{head}/{layer}"] = combine(vals)
    return out


def compare(summary, model, base="none"):
    """model - base for every probe both have: difference and its s.e. (independent errors)."""
    out = {}
    for k, v in summary.get(model, {}).items():
        b = summary.get(base, {}).get(k)
        if b:
            se = math.sqrt(v["se"] ** 2 + b["se"] ** 2)
            out[k] = {"diff": v["mean"] - b["mean"], "se": se,
                      "decided": abs(v["mean"] - b["mean"]) > stats.Z95 * se}
    return out


def load_docs(units):
    docs = []
    for u in units:
        f = Path(u["out"]) / "results.json"
        if not f.is_file():
            raise FileNotFoundError(f"{f}: probe run '{u['name']}' has no results")
        docs.append((u, json.loads(f.read_text())))
    return docs
