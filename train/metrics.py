"""Where numbers go: a JSON-lines file in the run directory (always) and wandb (if enabled).
Only rank 0 writes."""
import json
import os
import time
import uuid
from pathlib import Path

# Why a sample or shard was skipped, as the data pipeline counts them (train/data/). The step's
# counts of every rank travel in the step's one all-reduce as a fixed-length vector in this
# order; a reason missing here is still counted, under "other" (add it here to see it by name).
SKIP_REASONS = ("corrupt_member", "truncated_shard", "unreadable_shard", "missing_shard", "duplicate_member",
                "incomplete_sample", "incomplete_set", "empty_caption", "non_utf8_caption",
                "undecodable_image", "oversized_image", "sets_trimmed", "other")
_warned = set()
_ours = {}  # WANDB_* values this module set, so a second run in one process gets its own


def skip_counts(counter) -> list:
    """A step's skip Counter as the fixed-length list (SKIP_REASONS order) the ranks sum."""
    out = [0.0] * len(SKIP_REASONS)
    for reason, n in counter.items():
        if reason not in SKIP_REASONS and reason not in _warned:
            _warned.add(reason)
            print(f"[hnclip] data skip reason '{reason}' is counted as data/other "
                  f"(train/metrics.py SKIP_REASONS does not list it)", flush=True)
        out[SKIP_REASONS.index(reason) if reason in SKIP_REASONS else -1] += n
    return out


def skip_logs(summed) -> dict:
    """The summed vector back to {reason: count}, zero counts left out."""
    return {r: int(round(v)) for r, v in zip(SKIP_REASONS, summed) if v}


def keep_wandb_inside(run_dir):
    """wandb writes its cache, config, artifacts and staging files under ~/.cache,
    ~/.config and ~/.local/share by default: point every one of them into the run directory
    (a user's own WANDB_* setting wins)."""
    base = Path(run_dir).resolve() / "wandb"
    for var, sub in (("WANDB_DIR", ""), ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config"),
                     ("WANDB_DATA_DIR", "data"), ("WANDB_ARTIFACT_DIR", "artifacts")):
        path = base / sub if sub else base.parent
        if not os.environ.get(var) or os.environ[var] == _ours.get(var):
            os.environ[var] = _ours[var] = str(path)
        Path(os.environ[var]).mkdir(parents=True, exist_ok=True)


class MetricsLog:
    def __init__(self, run_dir, cfg, enabled: bool, config_dict=None, run_name=None):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.wandb = None
        if not enabled:
            return
        self.file = open(self.path, "a", buffering=1)
        if cfg.wandb and cfg.wandb_mode != "disabled":
            keep_wandb_inside(run_dir)  # before the import: wandb reads some of them once
            import wandb
            id_file = Path(run_dir) / "wandb_id.txt"
            # the id persists in the run dir so a requeued job continues the same wandb run
            run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
            id_file.write_text(run_id)
            os.environ.setdefault("WANDB_SILENT", "true")
            # logger.run_name overrides the run's own name (run_name, which names run_dir too)
            self.wandb = wandb.init(project=cfg.project, name=cfg.run_name or run_name, id=run_id,
                                    resume="allow", dir=str(run_dir), mode=cfg.wandb_mode,
                                    config=config_dict)

    def log(self, step: int, values: dict):
        if not self.enabled:
            return
        row = {"step": step, "time": time.time(), **{k: _num(v) for k, v in values.items()}}
        self.file.write(json.dumps(row) + "\n")
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in row.items() if k not in ("step", "time")}, step=step)

    def log_media(self, step: int, values: dict):
        if self.wandb is not None:
            self.wandb.log(values, step=step)

    def close(self):
        if not self.enabled:
            return
        self.file.close()
        if self.wandb is not None:
            self.wandb.finish()


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def read_metrics(run_dir):
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
