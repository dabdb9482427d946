"""A run directory belongs to one run. Before a trainer resumes from a run directory's
checkpoint it compares the new config with the one the directory was made with
(<run_dir>/config.yaml): anything that changes the result stops the run, before a single
file in the directory is touched; only keys that do not change what is trained may differ."""
from pathlib import Path

from omegaconf import OmegaConf

from .config import ConfigError

# Keys (or key prefixes ending in '.') whose change a resume accepts. Extending optim.steps
# (never shortening it) continues the run (the schedule's horizon moves with it, as a requeued
# job expects); the rest only change when things are logged, evaluated or saved, or how fast
# data is read
# (run_name differs here only when run_dir is given explicitly: the directory is the same).
ALLOWED = ("optim.steps", "optim.max_nonfinite_in_row", "logger.", "eval.", "checkpoint.every_steps",
           "checkpoint.keep_last", "checkpoint.resume", "data.workers", "data.worker_nice", "model.compile",
           "run_dir", "run_name")


class ResumeConflict(ConfigError):
    pass


def _flat(node, prefix=""):
    out = {}
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return {prefix[:-1]: node}
    for k, v in items:
        if isinstance(v, (dict, list)) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _schema_defaults() -> dict:
    from .config import Config
    return _flat(OmegaConf.to_container(OmegaConf.structured(Config), resolve=False))


def _allowed(key):
    return any(key == a or (a.endswith(".") and key.startswith(a)) for a in ALLOWED)


def _ignored(key, now):
    # with a global batch the per-rank counts follow the world size: the global key is compared
    for rank_key, global_key in (("data.pairs_per_step", "data.global_pairs_per_step"),
                                 ("data.set_items_per_step", "data.global_set_items_per_step")):
        if key == rank_key and now.get(global_key) is not None:
            return True
    return False


def differences(saved: dict, now: dict):
    """-> (blocking, allowed): sorted lists of (key, saved value, new value). A key absent from
    the saved config (written before the key existed) counts as the schema's default."""
    a, b = _flat(saved), _flat(now)
    defaults = _schema_defaults()
    blocking, allowed = [], []
    for key in sorted(set(a) | set(b)):
        # a key the schema gained after the run was made: the old run had its default behaviour
        old = a[key] if key in a else defaults.get(key)
        new = b.get(key)
        if old == new or _ignored(key, b):
            continue
        # fewer steps than the run was set up for would train nothing and relabel the weights
        shrinks = key == "optim.steps" and isinstance(old, int) and isinstance(new, int) and new < old
        (allowed if _allowed(key) and not shrinks else blocking).append((key, old, new))
    return blocking, allowed


def _show(changes):
    return "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changes)


def check(cfg, run_dir, has_checkpoint: bool) -> str:
    """Raise ResumeConflict if resuming run_dir with cfg would continue a different run.
    Returns a line naming the accepted changes ('' if none, or if nothing will be resumed)."""
    if not (cfg.checkpoint.resume and has_checkpoint):
        return ""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return f"{path} is missing: the checkpoint's config cannot be compared with this one"
    saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    now = OmegaConf.to_container(cfg, resolve=True)
    blocking, allowed = differences(saved, now)
    if blocking:
        keys = ", ".join(k for k, _, _ in blocking)
        raise ResumeConflict(
            f"{run_dir} holds a run made with a different config ({keys}); resuming would continue "
            f"that run, not this one. Differences: {_show(blocking)}. Nothing was changed in {run_dir}. "
            f"Start a new run with run_name=<new name> (or run_dir=...), or overwrite the old one with "
            f"checkpoint.resume=false. Changes a resume accepts: {', '.join(ALLOWED)}")
    return f"resuming with changed settings (allowed): {_show(allowed)}" if allowed else ""


def set_aside_previous_run(run_dir) -> Path:
    """checkpoint.resume=false on a directory that already holds a run: the old run's files move
    to <run_dir>/replaced/<time>/ so the new run starts clean (no stale checkpoint a later
    resume would pick up, no metrics rows appended to another run's) and nothing is deleted.
    Returns where they went, or None if there was nothing to move."""
    import time
    run_dir = Path(run_dir)
    old = [p for p in run_dir.iterdir() if p.name != "replaced"] if run_dir.is_dir() else []
    if not old:
        return None
    dest = run_dir / "replaced" / time.strftime("%Y%m%d-%H%M%S")
    n = 0
    while dest.exists():  # two fresh starts within one second
        n += 1
        dest = dest.with_name(f"{dest.name.split('.')[0]}.{n}")
    dest.mkdir(parents=True)
    for p in old:
        p.rename(dest / p.name)
    return dest
