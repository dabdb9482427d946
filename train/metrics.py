"""Where numbers go: a JSON-lines file in the run directory (always) and wandb (if enabled).
Only rank 0 writes."""
import json
import os
import time
import uuid
from pathlib import Path


class MetricsLog:
    def __init__(self, run_dir, cfg, enabled: bool, config_dict=None):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.wandb = None
        if not enabled:
            return
        self.file = open(self.path, "a", buffering=1)
        if cfg.wandb and cfg.wandb_mode != "disabled":
            import wandb
            id_file = Path(run_dir) / "wandb_id.txt"
            # the id persists in the run dir so a requeued job continues the same wandb run
            run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
            id_file.write_text(run_id)
            os.environ.setdefault("WANDB_SILENT", "true")
            self.wandb = wandb.init(project=cfg.project, name=cfg.run_name, id=run_id, resume="allow",
                                    dir=str(run_dir), mode=cfg.wandb_mode, config=config_dict)

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
