"""Training checkpoints: atomic, verified, the last M kept, holding everything an exact resume
needs, and never able to run code when loaded.

Layout: <run_dir>/checkpoints/step-0000042/
    trainer.pt        model, optimizer, grad scaler, step, samples seen, data position (rank 0)
    rng-rank<r>.pt    each rank's RNG states (python, numpy, torch, cuda), as plain values and tensors
    engine/           DeepSpeed only: accelerate.save_state (sharded model + optimizer)
    meta.json         step and samples seen, for people and scripts
    manifest.json     size and SHA-256 of every other file; written last

Atomicity: everything is written into .tmp-step-N/, fsynced, and the directory is renamed to
step-N in one os.replace. A crash (or SIGKILL) at any point leaves either no step-N or a
complete one; `latest()` only ever sees complete ones, and `trainer.pt` is written last so a
directory without it is never taken for a checkpoint. The learning-rate schedule is a pure
function of the step (train/schedule.py), so the step *is* the scheduler state.

Trust: every file is read with torch.load(weights_only=True), so a crafted pickle cannot run
code. Damage after the save (a truncated copy, flipped bits on a bad disk) fails the manifest;
`resume_point()` then reports it, moves the checkpoint aside as step-N.damaged and takes the
previous one."""
import errno
import hashlib
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
MANIFEST_FILE = "manifest.json"
# what a save leaves behind when it dies half-way (the temp dir, or the old copy of a re-saved step)
LEFTOVER = re.compile(r"^\.(tmp|old)-step-\d+$")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class CheckpointError(RuntimeError):
    pass


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


# -- RNG: stored as ints, floats, tuples and tensors, all of which weights_only=True loads ------
def rng_state():
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, gauss))
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
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise _disk_error(e, tmp, run_dir) from e
    return tmp


def remove_leftovers(run_dir) -> list:
    """Rank 0, before training: delete the temp directories of saves that died half-way
    (they can hold gigabytes and are never a checkpoint). Returns what was removed."""
    root = root_of(run_dir)
    gone = [p for p in root.iterdir() if LEFTOVER.match(p.name)] if root.is_dir() else []
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


class _HashingWriter:
    """The file object torch.save writes through: hashes the bytes on their way to disk and
    keeps the OSError of a failed write, which torch's zip writer otherwise turns into an
    opaque 'enforce fail ... unexpected pos'."""

    def __init__(self, f):
        self.f, self.sha, self.size, self.error = f, hashlib.sha256(), 0, None

    def write(self, b):
        try:
            n = self.f.write(b)
        except OSError as e:
            self.error = e
            raise
        self.sha.update(memoryview(b)[:n] if n is not None else b)
        self.size += n if n is not None else len(b)
        return n

    def flush(self):
        self.f.flush()


def write_file(path: Path, obj) -> dict:
    """torch.save + fsync, so the rename in commit() never publishes unwritten bytes.
    Returns the file's manifest entry; a full disk raises CheckpointError("disk full at ...")."""
    path = Path(path)
    w = None
    try:
        with open(path, "wb") as f:
            w = _HashingWriter(f)
            torch.save(obj, w)
            f.flush()
            os.fsync(f.fileno())
    except Exception as e:
        cause = w.error if w is not None and w.error is not None else e
        if isinstance(cause, OSError) and cause.errno in DISK_FULL:
            raise _disk_error(cause, path, path.parent.parent.parent) from e
        raise
    return {"size": w.size, "sha256": w.sha.hexdigest()}


def _disk_error(e: OSError, path: Path, run_dir) -> Exception:
    if e.errno not in DISK_FULL:
        return e
    prev = latest(run_dir)
    return CheckpointError(f"disk full at {path} ({os.strerror(e.errno)}): this checkpoint was not written; "
                           f"the previous one is intact: {prev if prev else '(none yet)'}")


def _hash_file(path: Path) -> dict:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return {"size": path.stat().st_size, "sha256": sha.hexdigest()}


def write_manifest(tmp: Path, known: dict = None):
    """Size and SHA-256 of every file in the checkpoint; `known` holds entries computed while
    writing (rank 0's own files), the others (other ranks' RNG, DeepSpeed shards) are read back."""
    known = known or {}
    files = {}
    for p in sorted(tmp.rglob("*")):
        if p.is_file() and p.name != MANIFEST_FILE:
            rel = p.relative_to(tmp).as_posix()
            files[rel] = known.get(rel) or _hash_file(p)
    _write_text_synced(tmp / MANIFEST_FILE, json.dumps({"format": 1, "files": files}, indent=1))


def _write_text_synced(path: Path, text: str):
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def commit(run_dir, step: int, trainer_state: dict, keep_last: int, known: dict = None) -> Path:
    """Rank 0, after every rank wrote its part into the temp dir: write trainer.pt, the
    manifest, rename. On any failure the temp dir is removed and the previous checkpoint stays
    the latest. `known`: manifest entries of files already written (relative path -> entry)."""
    tmp, final = tmp_dir(run_dir, step), final_dir(run_dir, step)
    try:
        entries = dict(known or {})
        entries[TRAINER_FILE] = write_file(tmp / TRAINER_FILE, trainer_state)
        meta = {"step": step, "samples_seen": trainer_state.get("samples_seen")}
        _write_text_synced(tmp / "meta.json", json.dumps(meta))
        write_manifest(tmp, entries)
        _fsync_dir(tmp)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _disk_error(e, tmp, run_dir) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
    try:
        entry = write_file(tmp / "rng-rank0.pt", rng if rng is not None else rng_state())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return commit(run_dir, step, state, keep_last, {"rng-rank0.pt": entry})


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
def _torch_load(f: Path):
    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # zip errors of a truncated file, or the unpickler refusing a global
        raise CheckpointError(f"{f}: cannot be loaded as a checkpoint with weights_only=True "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def load(path):
    return _torch_load(Path(path) / TRAINER_FILE)


def load_rng(path, rank: int):
    """This rank's RNG states; None if the checkpoint came from a run with fewer ranks."""
    f = Path(path) / f"rng-rank{rank}.pt"
    return _torch_load(f) if f.is_file() else None


def verify(path) -> str:
    """'' if the checkpoint matches its manifest and its files load (weights_only); else what is wrong."""
    path = Path(path)
    mf = path / MANIFEST_FILE
    if not mf.is_file():
        return f"{mf} is missing (a checkpoint written before manifests, or copied incompletely)"
    try:
        files = json.loads(mf.read_text())["files"]
    except (ValueError, KeyError, TypeError) as e:
        return f"{mf} is unreadable ({e})"
    if TRAINER_FILE not in files:
        return f"{mf} does not list {TRAINER_FILE}"
    for rel, want in files.items():
        f = path / rel
        if not f.is_file():
            return f"{f} is missing"
        size = f.stat().st_size
        if size != want["size"]:
            return f"{f} has {size} bytes, the manifest says {want['size']} (truncated or overwritten)"
        if _hash_file(f)["sha256"] != want["sha256"]:
            return f"{f} fails its SHA-256 check (damaged after it was written)"
    for f in [path / TRAINER_FILE, *sorted(path.glob("rng-rank*.pt"))]:
        try:
            _torch_load(f)
        except CheckpointError as e:
            return str(e)
    return ""


def resume_point(run_dir, report=print):
    """Rank 0: the newest checkpoint that passes verify(), or None if there is none at all.
    A damaged one is reported and renamed step-N.damaged (kept for inspection, never taken
    again, never trimmed by keep_last); if checkpoints exist but none is usable the run stops
    rather than silently starting over."""
    found = checkpoints(run_dir)
    for path in reversed(found):
        problem = verify(path)
        if not problem:
            return path
        aside = path.with_name(path.name + ".damaged")
        n = 1
        while aside.exists():
            aside, n = path.with_name(f"{path.name}.damaged{n}"), n + 1
        os.replace(path, aside)
        report(f"[hnclip] WARNING: checkpoint {path} is damaged: {problem}; moved to {aside.name}, "
               f"trying the previous one")
    if found:
        raise CheckpointError(f"no usable checkpoint in {root_of(run_dir)}: all {len(found)} failed their "
                              f"check (see the warnings above). Restore one, or set "
                              f"checkpoint.resume=false to start over")
    return None


def trim_metrics_after(run_dir, step: int) -> int:
    """On resume from step k, drop metrics.jsonl rows of steps > k: the killed attempt logged
    them, the resumed one logs them again, and the file must hold each step once. Also drops
    a half-written last line. Returns the number of rows dropped.

    Rows are appended in step order, so the rows to drop are the file's tail: the file is cut
    in place (no second copy, so this works on a full disk). Only a file whose dropped rows
    are not all at the end is rewritten through a temporary copy."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return 0
    data = path.read_bytes()
    kept, dropped, cut, offset = [], 0, None, 0
    for line in data.splitlines(keepends=True):
        try:
            row = json.loads(line)
            drop = row.get("step", 0) > step
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            drop = True
        if drop:
            dropped += 1
            cut = offset if cut is None else cut
        else:
            kept.append(line if line.endswith(b"\n") else line + b"\n")
            if cut is not None:
                cut = -1  # a kept row after a dropped one: not a plain tail
        offset += len(line)
    if not dropped:
        return 0
    if cut is not None and cut >= 0:
        os.truncate(path, cut)
    else:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, path)
    return dropped
