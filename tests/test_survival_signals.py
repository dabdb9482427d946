"""A stop signal sent to every process of a run at once (what scancel, SLURM preemption and a
cgroup-wide kill do), with data.workers=2: the DataLoader workers survive it, the run
checkpoints and exits 3, and the resumed run reproduces the uninterrupted run's per-step
losses bit for bit. One process (signal to its process group) and two (signal to every
process of the launch: launcher, ranks, workers)."""
import os
import signal

import pytest

from scale_helpers import (
    launch_trainer,
    logged_steps,
    metric_rows,
    run_trainer,
    signal_all,
    start_launch,
    start_trainer,
    step_losses,
    tiny_overrides,
    wait_until,
)
from train import checkpoint as ckpt

STEPS = 14


def overrides(data, run, **extra):
    return tiny_overrides(data, run, steps=STEPS, **{"data.workers": 2, **extra})


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("ref_workers") / "run"
    r = run_trainer(overrides(tiny_data, run))
    assert r.returncode == 0, r.stderr[-3000:]
    return step_losses(run)


def check_resumed(run, ref, stopped_at):
    rows = [x["step"] for x in metric_rows(run) if "loss/total" in x]
    assert rows == list(range(1, STEPS + 1)), "every step logged exactly once"
    got = step_losses(run)
    assert got == ref, {s: (ref[s], got[s]) for s in ref if ref[s] != got[s]}
    assert 3 <= stopped_at < STEPS


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1], ids=["TERM", "USR1"])
def test_signal_to_process_group_with_workers(tiny_data, reference, tmp_path, sig):
    run = tmp_path / "run"
    proc = start_trainer(overrides(tiny_data, run), tmp_path / "log1")
    try:
        wait_until(lambda: logged_steps(run) >= 3, proc, 240, "step 3")
        os.killpg(proc.pid, sig)  # the trainer and both workers
        rc = proc.wait(120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err = (tmp_path / "log1" / "stderr.txt").read_text()
    assert rc == 3, err[-3000:]
    assert f"signal {int(sig)}: checkpointed at step" in err and "killed by signal" not in err, err[-3000:]
    stopped_at = ckpt.step_of(ckpt.latest(run))
    r = run_trainer(overrides(tiny_data, run))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"at step {stopped_at}" in r.stdout
    check_resumed(run, reference, stopped_at)


@pytest.mark.slow
def test_sigterm_to_every_process_of_two_ranks_with_workers(tiny_data, tmp_path):
    ref_run = tmp_path / "ref"
    r = launch_trainer(tmp_path, overrides(tiny_data, ref_run))
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "run"
    proc = start_launch(tmp_path, overrides(tiny_data, run), tmp_path / "log1")
    try:
        wait_until(lambda: logged_steps(run) >= 3, proc, 300, "step 3")
        signal_all(proc.pid, signal.SIGTERM)  # launcher, both ranks, their four workers
        proc.wait(180)
    finally:
        if proc.poll() is None:
            signal_all(proc.pid, signal.SIGKILL)
    err = (tmp_path / "log1" / "stderr.txt").read_text()
    assert err.count("signal 15: checkpointed at step") == 2, err[-4000:]  # both ranks
    assert "killed by signal" not in err, err[-4000:]
    latest = ckpt.latest(run)
    stopped_at = ckpt.step_of(latest)
    assert sorted(p.name for p in latest.glob("rng-rank*.pt")) == ["rng-rank0.pt", "rng-rank1.pt"]
    r = launch_trainer(tmp_path, overrides(tiny_data, run))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"at step {stopped_at}" in r.stdout
    check_resumed(run, step_losses(ref_run), stopped_at)
