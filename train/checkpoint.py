"""Training checkpoints: atomic (write to a temp dir, fsync, rename), keep the last M, hold
everything an exact resume needs: model, optimizer, scaler, RNG states, step, samples seen."""
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoints(run_dir):
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name))
             and (p / "trainer.pt").is_file()]
    return [p for _, p in sorted(found)]


def latest(run_dir):
    found = checkpoints(run_dir)
    return found[-1] if found else None


def rng_state():
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state()}


def set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save(run_dir, step: int, state: dict, keep_last: int):
    """state: a dict of picklable objects (state_dicts, counters). Only rank 0 calls this."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with open(tmp / "trainer.pt", "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)  # atomic: a crash leaves either the old or the new checkpoint
    for old in checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(path):
    return torch.load(Path(path) / "trainer.pt", map_location="cpu", weights_only=False)
