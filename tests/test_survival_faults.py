"""Faults a shared cluster produces, each end to end through the real entry point: data skips
counted per step over every rank, a full disk during a save, a lost rank, and wandb writing
outside the run directory."""
import io
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections import Counter
from pathlib import Path

import pytest

from scale_helpers import (
    descendants,
    launch_trainer,
    metric_rows,
    run_trainer,
    start_launch,
    step_losses,
    tiny_overrides,
    wait_until,
)
from train import checkpoint as ckpt


# -- skip counters ----------------------------------------------------------------------
def damage_pairs(src: Path, dst: Path, every=5):
    """A copy of the data whose pair shards have every `every`-th image replaced by bytes that
    do not decode (what a broken download leaves)."""
    shutil.copytree(src, dst)
    for shard in sorted((dst / "pairs").glob("*.tar")):
        members = []
        with tarfile.open(shard) as t:
            for m in t.getmembers():
                members.append((m, t.extractfile(m).read()))
        with tarfile.open(shard, "w") as t:
            for m, data in members:
                if m.name.endswith(".jpg") and int(m.name.split(".")[0]) % every == 0:
                    data = b"not an image"
                m.size = len(data)
                t.addfile(m, io.BytesIO(data))


def expected_skips(cfg_over, world, steps):
    """What each rank's loader counts in each step, read straight from the data pipeline."""
    from conftest import compose
    from train import models
    from train.config import validate
    from train.data.steps import make_loader, spec_from_config
    cfg = validate(compose(cfg_over))
    _, pre, _, tok = models.create(cfg.model.name, None)
    per_step = [Counter() for _ in range(steps)]
    for rank in range(world):
        it = iter(make_loader(spec_from_config(cfg.data, cfg.seed, rank, world), pre, tok, 0))
        for s in range(steps):
            per_step[s].update(next(it)["skipped"])
    return per_step


@pytest.mark.slow
def test_skip_counters_per_step_summed_over_ranks(tiny_data, tmp_path):
    data = tmp_path / "data"
    damage_pairs(tiny_data, data)
    run = tmp_path / "run"
    over = tiny_overrides(data, run, steps=6, **{"logger.log_every": 4})  # counts must not depend on it
    want = expected_skips(over, 2, 6)
    per_rank_nonzero = sum(1 for c in want if c)
    assert per_rank_nonzero >= 3, want  # the damage shows up in most steps
    r = launch_trainer(tmp_path, over)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [x for x in metric_rows(run) if "loss/total" in x]
    total = Counter()
    for row, w in zip(rows, want):
        got = {k[len("data/"):]: v for k, v in row.items() if k.startswith("data/")}
        assert got == dict(w), (row["step"], got, w)
        total.update(w)
        logged = {k[len("data_total/"):]: v for k, v in row.items() if k.startswith("data_total/")}
        assert logged == dict(total)


# -- a full disk during a save ----------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=130m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
def test_disk_full_during_save_then_resume(tiny_data, tmp_path, small_disk):
    """130 MB holds one checkpoint of the tiny model (83 MB) but not two: the save at step 4
    fails. It says "disk full at <path>", removes its temp dir and leaves step 2 the latest.
    A resume on the still nearly full disk gets past the metrics trim; with room again it
    finishes with the uninterrupted run's losses."""
    ref = tmp_path / "ref"
    r = run_trainer(tiny_overrides(tiny_data, ref, steps=6))
    assert r.returncode == 0, r.stderr[-3000:]
    run = small_disk / "run"
    over = tiny_overrides(tiny_data, run, steps=6, **{"checkpoint.every_steps": 2, "checkpoint.keep_last": 2})
    r = run_trainer(over)
    assert r.returncode != 0
    assert f"disk full at {run}/checkpoints/.tmp-step-0000004" in r.stderr, r.stderr[-3000:]
    assert "previous one is intact" in r.stderr and "step-0000002" in r.stderr
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-0000002"]  # no .tmp-step left
    assert ckpt.verify(run / "checkpoints" / "step-0000002") == ""

    free = shutil.disk_usage(small_disk).free
    (small_disk / "filler").write_bytes(b"\0" * (free - (2 << 20)))  # 2 MB left: no room for a copy
    r = run_trainer(over)
    assert "resumed from" in r.stdout and "at step 2 (2 metrics rows after it dropped)" in r.stdout, \
        r.stdout[-2000:] + r.stderr[-3000:]
    assert "disk full at" in r.stderr, r.stderr[-3000:]

    (small_disk / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,size=400m", str(small_disk)], check=True)
    r = run_trainer(over)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [x["step"] for x in metric_rows(run) if "loss/total" in x] == list(range(1, 7))
    assert step_losses(run) == step_losses(ref)


# -- a lost rank -------------------------------------------------------------------------
def env_of(pid):
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0") if "=" in kv)


@pytest.mark.slow
def test_lost_rank_ends_the_run_naming_it_and_usr1_is_honoured(tiny_data, tmp_path):
    """Rank 1 is stopped (SIGSTOP) after step 3; rank 0 gets USR1 while it waits. Within
    distributed.timeout_s rank 0 ends the run naming rank 1, and as a signalled run (exit 3)."""
    run = tmp_path / "run"
    over = tiny_overrides(tiny_data, run, steps=12, **{"distributed.timeout_s": 8})
    proc = start_launch(tmp_path, over, tmp_path / "log", env={"HNCLIP_TEST_STOP_AT": "3:1"})
    err = tmp_path / "log" / "stderr.txt"
    try:
        wait_until(lambda: any(Path(f"/proc/{p}/stat").exists() and
                               Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
                               for p in descendants(proc.pid)), proc, 300, "rank 1 to stop")
        t_stop = time.time()
        rank0 = [p for p in descendants(proc.pid) if env_of(p).get("RANK") == "0" and p != proc.pid]
        assert rank0
        for p in rank0:
            os.kill(p, signal.SIGUSR1)
        wait_until(lambda: "stopped answering" in err.read_text(), proc, 120, "rank 0's message")
        waited = time.time() - t_stop
    finally:
        for p in descendants(proc.pid):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(30)
    text = err.read_text()
    assert "rank(s) 1 stopped answering" in text and "distributed.timeout_s=8" in text, text[-3000:]
    assert "hnclip: signal 10, but rank(s) 1 stopped answering" in text, text[-3000:]
    assert waited < 60, waited  # not gloo's default 30 minutes


# -- wandb stays inside the run directory ------------------------------------------------
@pytest.mark.slow
def test_wandb_writes_nothing_outside_the_run_dir(tiny_data, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    run = tmp_path / "run"
    env = {"HOME": str(home), "XDG_CACHE_HOME": "", "XDG_CONFIG_HOME": "", "XDG_DATA_HOME": ""}
    env.update({k: "" for k in os.environ
                if k.startswith("WANDB_") and k not in ("WANDB_MODE", "WANDB_SILENT")})
    over = tiny_overrides(tiny_data, run, steps=2, **{"logger.wandb": "true", "run_name": "survival-name"})
    r = run_trainer(over, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []
    runs = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    # the run record's display name: a protobuf string, its length byte (13) right before it
    # (run_name also appears in the logged config and the command line, quoted or after '=')
    assert runs and b"\x0dsurvival-name" in runs[0].read_bytes()


def test_skip_vector_round_trip_and_unknown_reasons():
    from train.metrics import SKIP_REASONS, skip_counts, skip_logs
    v = skip_counts(Counter({"corrupt_member": 2, "a_reason_not_listed": 3}))
    assert len(v) == len(SKIP_REASONS)
    assert skip_logs([a + b for a, b in zip(v, v)]) == {"corrupt_member": 4, "other": 6}  # two ranks summed
