"""Training checkpoints: atomic, the last M kept, holding everything an exact resume needs.

Layout: <run_dir>/checkpoints/step-0000042/
    trainer.pt        model, optimizer, grad scaler, step, samples seen, data position (rank 0)
    rng-rank<r>.pt    each rank's RNG states (python, numpy, torch, cuda)
    engine/           DeepSpeed only: accelerate.save_state (sharded model + optimizer)

Atomicity: everything is written into .tmp-step-N/, fsynced, and the directory is renamed to
step-N in one os.replace. A crash (or SIGKILL) at any point leaves either no step-N or a
complete one; `latest()` only ever sees complete ones, and `trainer.pt` is written last so a
directory without it is never taken for a checkpoint. The learning-rate schedule is a pure
function of the step (train/schedule.py), so the step *is* the scheduler state."""
import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

STEP_DIR = re.compile(r"^step-(\d+)$")
TRAINER_FILE = "trainer.pt"


def root_of(run_dir) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoints(run_dir):
    root = root_of(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name))
             and (p / TRAINER_FILE).is_file()]
    return [p for _, p in sorted(found)]


def latest(run_dir):
    found = checkpoints(run_dir)
    return found[-1] if found else None


def step_of(path) -> int:
    return int(STEP_DIR.match(Path(path).name).group(1))


# -- RNG --------------------------------------------------------------------------------
def rng_state():
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- writing: begin (rank 0) -> every rank writes its part -> commit (rank 0) ------------
def tmp_dir(run_dir, step: int) -> Path:
    return root_of(run_dir) / f".tmp-step-{step:07d}"


def final_dir(run_dir, step: int) -> Path:
    return root_of(run_dir) / f"step-{step:07d}"


def begin(run_dir, step: int) -> Path:
    """Rank 0: a fresh temp directory (a leftover from a crashed save is discarded)."""
    tmp = tmp_dir(run_dir, step)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def write_file(path: Path, obj):
    """torch.save + fsync, so the rename in commit() never publishes unwritten bytes."""
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def commit(run_dir, step: int, trainer_state: dict, keep_last: int) -> Path:
    """Rank 0, after every rank wrote its part into the temp dir: write trainer.pt, rename."""
    tmp, final = tmp_dir(run_dir, step), final_dir(run_dir, step)
    write_file(tmp / TRAINER_FILE, trainer_state)
    (tmp / "meta.json").write_text(json.dumps({"step": step, "samples_seen": trainer_state.get("samples_seen")}))
    _fsync_dir(tmp)
    if final.exists():
        # the same step saved twice (a signal right after a periodic save): the state is the
        # same; move the old one aside instead of deleting it first, so no moment lacks it
        old = final.with_name(f".old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)  # atomic: a crash leaves either the old or the new checkpoint
    _fsync_dir(final.parent)
    for old in checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save(run_dir, step: int, state: dict, keep_last: int, rng=None) -> Path:
    """Single-process convenience: begin + this process's RNG + commit."""
    tmp = begin(run_dir, step)
    write_file(tmp / "rng-rank0.pt", rng if rng is not None else rng_state())
    return commit(run_dir, step, state, keep_last)


def _fsync_dir(path: Path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


# -- reading ----------------------------------------------------------------------------
def load(path):
    return torch.load(Path(path) / TRAINER_FILE, map_location="cpu", weights_only=False)


def load_rng(path, rank: int):
    """This rank's RNG states; None if the checkpoint came from a run with fewer ranks."""
    f = Path(path) / f"rng-rank{rank}.pt"
    return torch.load(f, weights_only=False) if f.is_file() else None


def trim_metrics_after(run_dir, step: int) -> int:
    """On resume from step k, drop metrics.jsonl rows of steps > k: the killed attempt logged
    them, the resumed one logs them again, and the file must hold each step once. Also drops
    a half-written last line. Returns the number of rows dropped."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        if row.get("step", 0) > step:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(l + "\n" for l in kept))
        os.replace(tmp, path)
    return dropped
