"""A real one-node SLURM (Debian's packages, started by launch/local_slurm.sh) runs the
project's own launch/slurm/train_1node.sbatch; the job gets its warning signal mid-run, the
trainer checkpoints, the script requeues the job, and the second attempt resumes and
finishes with every step done exactly once.

Needs root (to install and start SLURM). Without it the test is skipped, unless
HNCLIP_REQUIRE_SLURM=1 (.ci/run sets it), in which case it fails."""
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import ROOT
from scale_helpers import metric_rows, tiny_overrides
from train import checkpoint as ckpt

STEPS = 24


def slurm_or_skip(nodes=1):
    why = None
    if os.geteuid() != 0 and not shutil.which("sbatch"):
        why = "SLURM is not installed and installing it needs root"
    else:
        r = subprocess.run(["bash", str(ROOT / "launch/local_slurm.sh"), "start", str(nodes)],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            why = f"launch/local_slurm.sh start failed: {r.stderr[-1500:]}"
    if why:
        if os.environ.get("HNCLIP_REQUIRE_SLURM") == "1":
            pytest.fail(why)
        pytest.skip(why)


def job_state(job):
    r = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True)
    m = re.search(r"JobState=(\S+)", r.stdout)
    return m.group(1) if m else "UNKNOWN"


def wait_for(pred, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.slow
def test_signal_requeue_resume_every_step_once(tiny_data, tmp_path):
    slurm_or_skip()
    env = ["HNCLIP_ACCELERATE_CONFIG=launch/accelerate/1gpu.yaml"]
    check_requeue(tiny_data, tmp_path, "launch/slurm/train_1node.sbatch", 1, env)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("HNCLIP_SLURM_MULTINODE") != "1",
                    reason="opt-in (HNCLIP_SLURM_MULTINODE=1): restarts the local SLURM with 2 nodes")
def test_multinode_script_on_two_nodes(tiny_data, tmp_path):
    slurm_or_skip(nodes=2)
    try:
        check_requeue(tiny_data, tmp_path, "launch/slurm/train_multinode.sbatch", 2, [])
    finally:
        subprocess.run(["bash", str(ROOT / "launch/local_slurm.sh"), "start", "1"], capture_output=True)


def check_requeue(tiny_data, tmp_path, script, nodes, env):
    run, out = tmp_path / "run", tmp_path / "slurm-%j.out"
    env = ",".join(["ALL", "HNCLIP_PROCS_PER_NODE=1", "WANDB_MODE=offline", "OMP_NUM_THREADS=1", *env])
    over = tiny_overrides(tiny_data, run, steps=STEPS, **{"logger.wandb": "true"})
    # the script's GPU/CPU requests are for real nodes; a command line option wins over #SBATCH
    r = subprocess.run(["sbatch", "--parsable", f"--nodes={nodes}", "--gpus-per-node=0", "--cpus-per-task=1",
                        "--mem=3G", f"--output={out}", f"--export={env}", script, *over],
                       cwd=ROOT, capture_output=True, text=True, check=True)
    job = r.stdout.strip().split(";")[0]
    log = tmp_path / f"slurm-{job}.out"
    try:
        def trained_steps():
            try:
                return len([x for x in metric_rows(run) if "loss/total" in x])
            except (FileNotFoundError, ValueError):
                return 0
        wait_for(lambda: trained_steps() >= 3, 240, "the first attempt's third step")
        subprocess.run(["scancel", "-s", "USR1", "-b", job], check=True)  # what --signal=B:USR1@N sends
        wait_for(lambda: job_state(job) in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 300,
                 "the requeued job to finish")
    finally:
        subprocess.run(["scancel", job], capture_output=True)
    text = log.read_text()
    assert job_state(job) == "COMPLETED", text[-3000:]
    assert "requeueing job" in text and "attempt 2" in text, text[-3000:]
    m = re.search(r"resumed from \S+ at step (\d+)", text)
    assert m and 3 <= int(m.group(1)) < STEPS, text[-3000:]
    # every step trained exactly once over both attempts (progress lines, log_every=1)...
    done = [int(s) for s in re.findall(rf"\[hnclip\] step (\d+)/{STEPS} ", text)]
    assert sorted(done) == list(range(1, STEPS + 1)), done
    # ...and logged exactly once
    rows = [x["step"] for x in metric_rows(run) if "loss/total" in x]
    assert rows == list(range(1, STEPS + 1))
    final = ckpt.load(ckpt.latest(run))
    assert final["step"] == STEPS and final["samples_seen"] == STEPS * 14 * nodes
    assert final["world_size"] == nodes
    assert len(list((run / "wandb").glob("offline-run-*"))) >= 1 and (run / "wandb_id.txt").is_file()


# -- stop signals to the whole job, with data workers, resumed bit for bit -----------------
SIG_STEPS = 16


def submit(tiny_data, run, out, extra=(), cpus=1):
    env = ",".join(["ALL", "HNCLIP_PROCS_PER_NODE=1", "WANDB_MODE=offline", "OMP_NUM_THREADS=1",
                    "HNCLIP_ACCELERATE_CONFIG=launch/accelerate/1gpu.yaml"])
    over = tiny_overrides(tiny_data, run, steps=SIG_STEPS, **{"data.workers": 2})
    r = subprocess.run(["sbatch", "--parsable", "--nodes=1", "--gpus-per-node=0", f"--cpus-per-task={cpus}",
                        "--mem=3G", f"--output={out}", f"--export={env}", *extra,
                        "launch/slurm/train_1node.sbatch", *over],
                       cwd=ROOT, capture_output=True, text=True, check=True)
    return r.stdout.strip().split(";")[0]


@pytest.fixture(scope="module")
def workers_reference(tiny_data, tmp_path_factory):
    from scale_helpers import run_trainer, step_losses
    run = tmp_path_factory.mktemp("slurm_ref") / "run"
    r = run_trainer(tiny_overrides(tiny_data, run, steps=SIG_STEPS, **{"data.workers": 2}))
    assert r.returncode == 0, r.stderr[-3000:]
    return step_losses(run)


def trained(run):
    try:
        return len([x for x in metric_rows(run) if "loss/total" in x])
    except (FileNotFoundError, ValueError):
        return 0


def finished(job):
    return job_state(job) in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL")


def check_exact(run, ref, text):
    from scale_helpers import step_losses
    m = re.search(r"resumed from \S+ at step (\d+)", text)
    assert m and 3 <= int(m.group(1)) < SIG_STEPS, text[-3000:]
    assert "killed by signal" not in text, text[-3000:]
    assert [x["step"] for x in metric_rows(run) if "loss/total" in x] == list(range(1, SIG_STEPS + 1))
    got = step_losses(run)
    assert got == ref, {s: (ref[s], got[s]) for s in ref if ref[s] != got[s]}


@pytest.mark.slow
def test_scancel_term_to_whole_job_with_workers_then_resubmit(tiny_data, workers_reference, tmp_path):
    """`scancel --signal=TERM --full`: every process of the job (batch shell, launcher, trainer,
    its 2 data workers) gets SIGTERM; the trainer checkpoints, the job ends without requeueing
    itself (TERM means stop), and a new submission resumes to the uninterrupted losses."""
    slurm_or_skip()
    run = tmp_path / "run"
    job = submit(tiny_data, run, tmp_path / "first.out")
    try:
        wait_for(lambda: trained(run) >= 3, 240, "the third step")
        subprocess.run(["scancel", "--signal=TERM", "--full", job], check=True)
        wait_for(lambda: finished(job), 180, "the signalled job to end")
    finally:
        subprocess.run(["scancel", job], capture_output=True)
    first = (tmp_path / "first.out").read_text()
    assert "signal 15: checkpointed at step" in first, first[-3000:]
    assert "not requeueing" in first and "attempt 2" not in first, first[-3000:]
    job2 = submit(tiny_data, run, tmp_path / "second.out")
    try:
        wait_for(lambda: finished(job2), 300, "the resubmitted job to finish")
    finally:
        subprocess.run(["scancel", job2], capture_output=True)
    second = (tmp_path / "second.out").read_text()
    assert job_state(job2) == "COMPLETED", second[-3000:]
    check_exact(run, workers_reference, first + second)


@pytest.mark.slow
def test_preemption_by_higher_priority_partition_with_workers(tiny_data, workers_reference, tmp_path):
    """A job of the `urgent` partition (higher PriorityTier, PreemptMode=REQUEUE) needs the node:
    the training job gets its signal, checkpoints, is requeued, the urgent job runs, and the
    second attempt resumes to the uninterrupted losses bit for bit."""
    slurm_or_skip()
    run = tmp_path / "run"
    cpus = os.cpu_count()  # the whole node, so the urgent job can only run by preempting it
    job = submit(tiny_data, run, tmp_path / "slurm.out", cpus=cpus)
    urgent = None
    try:
        wait_for(lambda: trained(run) >= 3, 240, "the third step")
        urgent = subprocess.run(["sbatch", "--parsable", "-p", "urgent", f"--cpus-per-task={cpus}",
                                 "--mem=200M", f"--output={tmp_path / 'urgent.out'}",
                                 "--wrap", "echo urgent ran"],
                                capture_output=True, text=True, check=True).stdout.strip().split(";")[0]
        wait_for(lambda: job_state(urgent) == "COMPLETED", 240, "the urgent job")
        wait_for(lambda: finished(job), 400, "the preempted job to finish")
    finally:
        subprocess.run(["scancel", job] + ([urgent] if urgent else []), capture_output=True)
    text = (tmp_path / "slurm.out").read_text()
    assert job_state(job) == "COMPLETED", text[-3000:]
    assert "attempt 2" in text and "checkpointed at step" in text, text[-3000:]
    check_exact(run, workers_reference, text)
