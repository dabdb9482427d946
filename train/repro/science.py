"""The three papers' questions on the reproduction's models, in one command:

    python -m train.repro.science repro=outputs/repro_mini [jobs=2 alphas=[0,0.5,1] probe_seeds=[0,1]]
    python -m train.repro.science repro=outputs/repro_mini probe_extra="['tasks=[rcm,vsr]']"

reads the runs of `launch/repro_mini.sh` (run with KEEP_CHECKPOINTS, so pre-training and the
first seed's fine-tunings kept their checkpoints, and with the per-set scores it writes) and
  1. skill dynamics: every kept checkpoint of pre-training and of each fine-tuning scored on the
     held-out SPEC sets (the first `limit` sets of each subset), object zero-shot and in-set
     accuracy; trends, fluctuations and Kendall tau between skills (train/repro/skill_dynamics.py);
  2. probes: frozen-feature probes at every image-tower layer of the base and the three
     fine-tuned models, and the jointly trained control, over `probe_seeds` (train/repro/probes.py);
  3. the zero-shot trade-off: WiSE-FT between the base and each fine-tuned model at
     alpha = 0, 0.1, ..., 1 (train/repro/tradeoff.py);
  4. the claims' margins over all fine-tuning seeds, paired on the held-out sets (train/repro/margins.py);
and writes <out>/science.json (every number), science.md and its figures (train/repro/science_report.py).
Each evaluation or probe run writes its own file first; a rerun skips what exists. Each item of
`probe_extra` is a probe override (conf/probe.yaml), quoted as a list item."""
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import List, Optional

from hn_data.cli import REQUIRED, ConfigError, command, setting

# train.repro.evaluate registers hnclip-repro, in every worker too
from . import margins, points, probes, science_report, skill_dynamics, tradeoff
from .run import outside_hydra

VARIANTS = ("hn", "clip", "both")
STAGES = ("dynamics", "probes", "wise", "margins")


def layout(repro, seed):
    """The reproduction's run directories and weights."""
    repro = Path(repro)
    runs = {"pretrain": repro / "pretrain"}
    for v in VARIANTS:
        runs[v] = repro / (v if seed == 0 else f"{v}_s{seed}")
    final = {k: d / "final" / "open_clip_pytorch_model.bin" for k, d in runs.items()}
    for f in final.values():
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found: run launch/repro_mini.sh {repro} first "
                                    f"(with KEEP_CHECKPOINTS > 0 and seed {seed} in SEEDS)")
    return runs, final


def plan(args):
    """Every unit of work: (function, argument, label)."""
    runs, final = layout(args.repro, args.track_seed)
    data, out = Path(args.repro) / "data", Path(args.out)
    units = {"dynamics": [], "probes": [], "wise": []}
    for name, run_dir in runs.items():
        init = None if name == "pretrain" else final["pretrain"]
        for p in skill_dynamics.points_of_run(run_dir, data, out / "points" / "dynamics" / name,
                                              args.limit, init):
            units["dynamics"].append((points.evaluate_point, p, f"dynamics {name} step {p['step']}"))
    models = {"none": final["pretrain"], **{v: final[v] for v in VARIANTS}}
    joint = args.probe_seeds[:1] if args.joint_seeds is None else args.joint_seeds
    probe_units = [probes.unit("none", models["none"], s, out / "probes", out / "probe_data", True,
                               args.probe_extra) for s in joint]
    probe_units += [probes.unit(m, w, s, out / "probes", out / "probe_data", False, args.probe_extra)
                    for m, w in models.items() for s in args.probe_seeds]
    units["probes"] = [(probes.run_unit, u, f"probe {u['name']}") for u in probe_units]
    for v in VARIANTS:
        for p in tradeoff.points(v, final["pretrain"], final[v], data, out / "points" / "wise" / v,
                                 args.limit, args.alphas):
            units["wise"].append((points.evaluate_point, p, f"wise {v} alpha {p['alpha']}"))
    return runs, units, probe_units


def _worker_ready():
    """A spawned worker's first call: importing this module has registered the model config."""


def execute(work, jobs):
    """Run the units, at most `jobs` processes (one thread each), in the given order."""
    t0 = time.time()
    if jobs <= 1:
        for n, (fn, arg, label) in enumerate(work):
            fn(arg)
            print(f"[science] {n + 1}/{len(work)} {label} ({time.time() - t0:.0f} s)", flush=True)
        return
    # each worker imports this module first (its initializer lives here), and with it
    # train.repro.evaluate, which registers hnclip-repro: a probe unit alone would not
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                             initializer=_worker_ready) as pool:
        futures = {pool.submit(fn, arg): label for fn, arg, label in work}
        for n, f in enumerate(as_completed(futures)):
            if f.exception() is not None:   # stop at the first failure (finished units are kept)
                pool.shutdown(wait=True, cancel_futures=True)
                raise RuntimeError(f"science: {futures[f]} failed") from f.exception()
            print(f"[science] {n + 1}/{len(work)} {futures[f]} ({time.time() - t0:.0f} s)", flush=True)


def analyse(args, runs, units, probe_units):
    out = {"settings": {"limit": args.limit, "probe_seeds": args.probe_seeds, "note": args.note,
                        "joint_seeds": args.probe_seeds[:1] if args.joint_seeds is None else args.joint_seeds,
                        "alphas": args.alphas,
                        "track_seed": args.track_seed, "repro": str(args.repro)}}
    if "dynamics" in args.stages:
        files = {}
        for _, p, _ in units["dynamics"]:
            files.setdefault(Path(p["out"]).parent.name, []).append(p["out"])
        out["dynamics"] = {name: skill_dynamics.analyse_run(files[name], runs[name]) for name in runs}
        for res in out["dynamics"].values():
            res["summary"] = {w: skill_dynamics.summary(res["correlations"][w])
                              for w in ("levels", "changes")}
    if "probes" in args.stages:
        summary = probes.summarise(probes.load_docs(probe_units))
        out["probes"] = {"summary": summary,
                         "vs_base": {m: probes.compare(summary, m) for m in VARIANTS},
                         "joint_vs_frozen": probes.compare(summary, "none+joint", base="none")}
    if "wise" in args.stages:
        out["wise"] = {}
        for v in VARIANTS:
            docs = [points.read_point(p["out"]) for _, p, _ in units["wise"] if p["variant"] == v]
            out["wise"][v] = tradeoff.analyse(docs)
    if "margins" in args.stages:
        out["margins"] = margins.claims(Path(args.repro) / "sets")
    return out


@dataclass
class ScienceCommand:
    repro: str = setting(REQUIRED, "the reproduction's output folder")
    out: Optional[str] = setting(None, "default: <repro>/science")
    jobs: int = setting(2, "processes side by side, one thread each")
    limit: int = setting(100, "held-out sets per subset for the repeated evaluations (dynamics, WiSE-FT)")
    alphas: List[float] = setting(list(tradeoff.ALPHAS), "WiSE-FT mixing weights; must include 0 and 1")
    probe_seeds: List[int] = setting([0, 1], "probe seeds")
    # the joint control trains the tower itself: it costs several times the frozen probes
    joint_seeds: Optional[List[int]] = setting(None, "seeds of the jointly trained control "
                                               "(default: the first probe seed; [] for none)")
    probe_extra: List[str] = setting([], "probe config overrides (conf/probe.yaml), each quoted: "
                                     "probe_extra=['tasks=[rcm,vsr]']")
    track_seed: int = setting(0, "the fine-tuning seed whose checkpoints were kept")
    stages: List[str] = setting(list(STAGES), f"which of {', '.join(STAGES)}")
    note: str = setting("", "a line for the report (how it was made)")


def check(args: ScienceCommand):
    if args.jobs < 1 or args.limit < 1:
        raise ConfigError(f"invalid value jobs={args.jobs} or limit={args.limit}: both must be >= 1")
    if not {0.0, 1.0} <= set(args.alphas) or any(not 0 <= a <= 1 for a in args.alphas):
        raise ConfigError(f"invalid value alphas={args.alphas}: values in [0, 1], including 0 and 1")
    if not args.probe_seeds:
        raise ConfigError("probe_seeds=[]: give at least one seed, e.g. probe_seeds=[0]")
    bad = [s for s in args.stages if s not in STAGES]
    if bad or not args.stages:
        raise ConfigError(f"invalid value stages={args.stages}: choose from {', '.join(STAGES)}")


def run(args: ScienceCommand):
    args.out = Path(args.out or Path(args.repro) / "science")
    t0 = time.time()
    runs, units, probe_units = plan(args)
    # the costliest first, so the last minutes are not spent on one long unit alone
    work = [u for s in ("probes", "dynamics", "wise") if s in args.stages for u in units[s]]
    print(f"[science] {len(work)} units of work, {args.jobs} at a time", flush=True)
    with outside_hydra():  # a probe run in this process (jobs=1) composes its config with Hydra
        execute(work, args.jobs)
    result = analyse(args, runs, units, probe_units)
    result["settings"]["seconds"] = round(time.time() - t0)
    result = json.loads(json.dumps(result))   # the report reads what the file holds (string keys)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "science.json").write_text(json.dumps(result, indent=1))
    md = science_report.write(result, args.out, note=args.note)
    print(f"[science] wrote {args.out / 'science.json'} and {md} ({time.time() - t0:.0f} s)")
    return result


main = command(ScienceCommand, run, prog="hnclip-repro-science", doc=__doc__, check=check)


if __name__ == "__main__":
    sys.exit(main())
