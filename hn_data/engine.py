"""The data engine's command: candidate-set shards for training plus a held-out benchmark in
the official SPEC layout, parallel over processes, deterministic by seed, resumable.

    python -m hn_data.engine out=data/engine train_per_subset=1000 heldout_per_subset=50 \
        workers=2 [backend=diffusion backend_options=opts.yaml]

Layout of OUT:
  sets/sets-NNNNNN.tar (+ _stats.json)          training sets, hn_data.set_format, PNG members
  heldout_sets/sets-NNNNNN.tar (+ _stats.json)  the held-out sets, same format (lossless)
  spec_heldout/<subset>/{image2text,text2image}.json + images   the official SPEC layout
  summary.json, .complete

Determinism: set i of a split is drawn from SeedSequence([seed, split, i, attempt]) alone, so
the bytes written do not depend on `workers` or on which shards a crashed run had finished.
Resume: a shard exists under its final name only once complete (atomic rename) and is skipped.
Disjointness: train draws object instances 0,2,4,... and even background seeds; held-out draws
odd ones - by construction, not by chance."""
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np
from tqdm import tqdm

from .cli import ConfigError, command, setting
from .concepts import SUBSETS, build
from .run_summary import write_summary
from .set_format import TarWriter, write_set
from .spec_layout import write_spec
from .tar_io import local_samples

SPLITS = {"train": 0, "heldout": 1}


class Config:
    """Everything a worker needs to make set i of a split (picklable)."""

    def __init__(self, backend="procedural", backend_options=None, size=64, seed=0,
                 subsets=None, instances_per_class=64, max_attempts=100, classes=None):
        self.backend, self.backend_options = backend, dict(backend_options or {})
        if classes:
            self.backend_options["classes"] = list(classes)
        self.size, self.seed = size, seed
        self.subsets = list(subsets or SUBSETS)
        unknown = [s for s in self.subsets if s not in SUBSETS]
        if unknown:
            raise ValueError(f"unknown subsets {unknown}; known: {list(SUBSETS)}")
        self.instances_per_class, self.max_attempts = instances_per_class, max_attempts

    def fingerprint(self, split, lo, hi) -> str:
        """What a shard's bytes depend on; a resumed run reuses a shard only if this matches."""
        return json.dumps([vars(self), split, lo, hi], sort_keys=True, default=str)


_BACKENDS = {}


def backend_for(cfg: Config):
    """One backend per process (models load once, not per set)."""
    key = (cfg.backend, json.dumps(cfg.backend_options, sort_keys=True, default=str))
    if key not in _BACKENDS:
        from .backends import make_backend
        _BACKENDS[key] = make_backend(cfg.backend, **cfg.backend_options)
    return _BACKENDS[key]


def make_set(cfg: Config, split: str, index: int, rejects=None):
    """(set i of the split, number of rejected attempts before it); rejects: a Counter that
    gets the reason of each rejected attempt (hn_data.concepts.build)."""
    sid = SPLITS[split]
    subset = cfg.subsets[index % len(cfg.subsets)]
    backend = backend_for(cfg)
    for attempt in range(cfg.max_attempts):
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, sid, index, attempt]))
        bg_seed = 2 * int(rng.integers(1 << 40)) + sid

        def instance(name, r, _sid=sid):
            return 2 * int(r.integers(cfg.instances_per_class)) + _sid

        cs = build(subset, rng, cfg.size, bg_seed, backend=backend, instance=instance, rejects=rejects)
        if cs is not None:
            cs.meta.update({"split": split, "index": index, "attempt": attempt})
            return cs, attempt
    raise RuntimeError(f"{subset} set {index} ({split}): every one of {cfg.max_attempts} attempts "
                       f"failed its mask checks; the backend's cut-outs cannot satisfy the rules")


def _shard_job(job):
    cfg, split, path, lo, hi = job
    path = Path(path)
    rejected, reasons = {}, Counter()
    w = TarWriter(path)
    for i in range(lo, hi):
        cs, rej = make_set(cfg, split, i, reasons)
        rejected[cs.subset] = rejected.get(cs.subset, 0) + rej
        write_set(w, f"{i:08d}", cs)
    w.close()
    stats = {"sets": hi - lo, "first": lo, "config": cfg.fingerprint(split, lo, hi),
             "rejected": sum(rejected.values()),
             "rejected_per_subset": rejected, "rejected_per_reason": dict(reasons)}
    _stats_path(path).write_text(json.dumps(stats, sort_keys=True))
    return stats


def _stats_path(tar_path: Path) -> Path:
    return tar_path.with_name(tar_path.name[:-4] + "_stats.json")


def write_split(cfg: Config, split: str, folder, n_sets: int, n_shards: int, workers: int = 1,
                desc=None):
    """Write n_sets sets of a split as n_shards tar shards; skips shards already complete."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jobs, done = [], []
    for s in range(n_shards):
        lo, hi = s * n_sets // n_shards, (s + 1) * n_sets // n_shards
        path = folder / f"sets-{s:06d}.tar"
        st = json.loads(_stats_path(path).read_text()) if _stats_path(path).exists() else {}
        if path.exists() and st.get("config") == cfg.fingerprint(split, lo, hi):
            done.append(st)   # resume: this shard is complete and made with these settings
        else:
            jobs.append((cfg, split, str(path), lo, hi))
    bar = tqdm(total=len(jobs), desc=desc or f"{split} shards", disable=not jobs)
    if workers <= 1 or len(jobs) <= 1:
        results = map(_shard_job, jobs)
    else:
        import multiprocessing as mp
        pool = mp.get_context("fork").Pool(min(workers, len(jobs)))
        results = pool.imap_unordered(_shard_job, jobs)
    for st in results:
        done.append(st)
        bar.update(1)
    bar.close()
    if workers > 1 and len(jobs) > 1:
        pool.close()
        pool.join()
    per_subset, per_reason = Counter(), Counter()
    for st in done:
        per_subset.update(st["rejected_per_subset"])
        per_reason.update(st.get("rejected_per_reason", {}))
    return {"sets": sum(st["sets"] for st in done), "rejected": sum(st["rejected"] for st in done),
            "rejected_per_subset": dict(per_subset), "rejected_per_reason": dict(per_reason),
            "written_shards": len(jobs)}


class _StoredSet:
    def __init__(self, rec, images):
        self.subset, self.captions = rec["subset"], rec["captions"]
        self.objects, self.meta = rec["objects"], rec["meta"]
        self.images = [images[k] for k in sorted(images)]


def read_sets(tar_path):
    """Yield the sets of one shard written by write_set (json + PNG members), in key order."""
    from PIL import Image
    groups = {}
    for key, sample in local_samples(tar_path):
        g = groups.setdefault(key, [None, {}])
        for ext, data in sample.items():
            if ext == "json":
                g[0] = json.loads(data)
            else:
                g[1][int(ext.split(".")[0])] = Image.open(io.BytesIO(data)).convert("RGB")
    for key in sorted(groups):
        rec, images = groups[key]
        if rec is None:
            raise ValueError(f"{tar_path}: set {key} has images but no {key}.json")
        yield key, _StoredSet(rec, images)


def write_spec_from_shards(shard_folder, spec_root):
    """The held-out shards -> the official SPEC layout (JPEG images, as released)."""
    import shutil
    sets = [cs for p in sorted(Path(shard_folder).glob("sets-*.tar")) for _, cs in read_sets(p)]
    shutil.rmtree(spec_root, ignore_errors=True)   # never mix images of an older run in
    write_spec(spec_root, sets)
    (Path(spec_root) / ".complete").write_text("ok\n")
    return len(sets)


def run(cfg: Config, out, train_per_subset, heldout_per_subset, train_shards=8, heldout_shards=2,
        workers=1):
    out = Path(out)
    n = len(cfg.subsets)
    train = write_split(cfg, "train", out / "sets", train_per_subset * n, train_shards, workers)
    held = write_split(cfg, "heldout", out / "heldout_sets", heldout_per_subset * n, heldout_shards, workers)
    if held["written_shards"] or not (out / "spec_heldout" / ".complete").exists():
        write_spec_from_shards(out / "heldout_sets", out / "spec_heldout")
    summary = {"train_sets": train["sets"], "heldout_sets": held["sets"],
               "rejected_sets": train["rejected"] + held["rejected"],
               "rejected_per_subset": {k: train["rejected_per_subset"].get(k, 0)
                                       + held["rejected_per_subset"].get(k, 0) for k in cfg.subsets},
               # why: layout (did not fit), masks, backend, or png/jpeg (the decoded file
               # measured another label, hn_data.shipped)
               "rejected_per_reason": dict(Counter(train["rejected_per_reason"])
                                           + Counter(held["rejected_per_reason"])),
               "backend": cfg.backend, "size": cfg.size, "seed": cfg.seed}
    return summary


def load_options(text):
    """backend_options: a JSON string, or a .json/.yaml file path."""
    if not text:
        return {}
    p = Path(text)
    if p.suffix in (".yaml", ".yml") and p.exists():
        import yaml
        return yaml.safe_load(p.read_text()) or {}
    return json.loads(p.read_text() if p.exists() else text)


BACKENDS = ("procedural", "diffusion")


@dataclass
class EngineKeys:
    """The keys that say how sets are made (shared by engine, preview and bench_engine)."""
    backend: str = setting("procedural", "procedural | diffusion")
    backend_options: str = setting("", "JSON, or a .json/.yaml file (diffusion: model paths)")
    size: int = setting(64, "image side in pixels")
    seed: int = setting(0, "every set is drawn from (seed, split, index) alone")
    subsets: List[str] = setting(list(SUBSETS), "subset names")
    instances_per_class: int = setting(64, "object instances per class and split")
    workers: int = setting(1, "processes (each loads its own backend)")


def engine_config(keys: EngineKeys) -> Config:
    """The worker's Config from the command's keys; a bad key is a ConfigError (exit 2)."""
    if keys.backend not in BACKENDS:
        raise ConfigError(f"invalid value backend={keys.backend!r}; choose one of {BACKENDS}")
    for name in ("size", "instances_per_class", "workers"):
        if getattr(keys, name) < 1:
            raise ConfigError(f"invalid value {name}={getattr(keys, name)}: must be >= 1")
    try:
        options = load_options(keys.backend_options)
    except ValueError as e:  # json.JSONDecodeError is one
        raise ConfigError(f"backend_options={keys.backend_options!r}: not JSON nor a .json/.yaml "
                          f"file ({e})") from None
    try:
        return Config(keys.backend, options, keys.size, keys.seed, list(keys.subsets),
                      keys.instances_per_class)
    except ValueError as e:
        raise ConfigError(f"subsets: {e}") from None


@dataclass
class EngineCommand(EngineKeys):
    out: str = setting(help="output folder (the run directory)")
    train_per_subset: int = setting(100, "training sets per subset")
    heldout_per_subset: int = setting(20, "held-out sets per subset")
    train_shards: int = setting(8)
    heldout_shards: int = setting(2)


def generate(keys: EngineCommand) -> dict:
    summary = run(engine_config(keys), keys.out, keys.train_per_subset, keys.heldout_per_subset,
                  keys.train_shards, keys.heldout_shards, keys.workers)
    return write_summary(keys.out, summary, mark_complete=True)


main = command(EngineCommand, generate, prog="hnclip-engine", doc=__doc__,
               run_dir="${out}", check=engine_config)


if __name__ == "__main__":
    main()
