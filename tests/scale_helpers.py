"""Shared by tests/test_scale_*.py: run the real entry point in a subprocess, optionally with a
fault injected (SIGKILL after step k, NaN loss at given steps, a raising loss on one rank), and
read what it left."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT

# Runs train/main.py's Hydra entry point with test-only faults patched in from outside, so the
# product code carries no fault-injection switches.
RUNNER = r'''
import os, signal, sys
sys.path.insert(0, os.getcwd())
import train.trainer as T

kill_at = int(os.environ.get("HNCLIP_TEST_KILL_AT", "-1"))
# "step:rank": that rank sends itself SIGUSR1 after that many steps (a signal reaching one rank)
signal_at = tuple(int(x) for x in os.environ.get("HNCLIP_TEST_SIGNAL_AT", "-1:-1").split(":"))
nan_steps = {int(s) for s in os.environ.get("HNCLIP_TEST_NAN_STEPS", "").split(",") if s}
nan_rank = int(os.environ.get("HNCLIP_TEST_NAN_RANK", "-1"))  # -1: every rank
# "step:rank": that rank stops itself (SIGSTOP) after that many steps: a lost rank
stop_at = tuple(int(x) for x in os.environ.get("HNCLIP_TEST_STOP_AT", "-1:-1").split(":"))
# "step:rank": that rank's forward raises FloatingPointError during that step
raise_at = tuple(int(x) for x in os.environ.get("HNCLIP_TEST_RAISE_AT", "-1:-1").split(":"))
# a folder: each rank writes its final weights there (rank<r>.pt) before the run's export
weights_dir = os.environ.get("HNCLIP_TEST_WEIGHTS_DIR")
current = [0]
orig_fb = T.Trainer._forward_backward
def forward_backward(self, batches):
    current[0] = self.step + 1
    if self.step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # no handler, no cleanup: like the OOM killer
    if (self.step, self.rank) == signal_at:
        os.kill(os.getpid(), signal.SIGUSR1)
    if (self.step, self.rank) == stop_at:
        os.kill(os.getpid(), signal.SIGSTOP)
    return orig_fb(self, batches)
T.Trainer._forward_backward = forward_backward
orig_finish = T.Trainer.finish
def finish(self):
    if weights_dir:
        import torch
        torch.save({k: v.detach().cpu() for k, v in self.raw_model.state_dict().items()},
                   os.path.join(weights_dir, f"rank{self.rank}.pt"))
    return orig_finish(self)
T.Trainer.finish = finish
orig_fl = T.forward_losses
def forward_losses(model, batch, loss_cfg, device="cpu"):
    loss, logs = orig_fl(model, batch, loss_cfg, device)
    if current[0] in nan_steps and nan_rank in (-1, int(os.environ.get("RANK", "0"))):
        loss = loss * float("nan")
    if (current[0], int(os.environ.get("RANK", "0"))) == raise_at:
        # a loss that checks itself and raises (after the model's forward and the gathers)
        raise FloatingPointError(f"injected: non-finite loss at step {current[0]}")
    return loss, logs
T.forward_losses = forward_losses
import train.accumulate as A
A.forward_losses = forward_losses  # the accumulation path calls it from there

sys.argv = ["train/main.py"] + sys.argv[1:]
import runpy
runpy.run_path("train/main.py", run_name="__main__")  # as a script: Hydra finds ../conf
'''


def tiny_overrides(data_root, run_dir, steps=12, **extra):
    o = {"data.root": data_root, "run_dir": run_dir, "optim.steps": steps, "optim.warmup_steps": 2,
         "data.pairs_per_step": 8, "data.set_items_per_step": 6, "data.workers": 0,
         "data.shuffle_buffer": 16, "eval.every_steps": 0, "eval.benchmarks": "[]",
         "logger.wandb": "false", "logger.log_every": 1, "checkpoint.every_steps": 0,
         "deterministic": "true"}
    o.update(extra)
    return [f"{k}={v}" for k, v in o.items()]


def run_trainer(overrides, kill_at=None, nan_steps=(), timeout=300, env=None):
    e = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1")
    if kill_at is not None:
        e["HNCLIP_TEST_KILL_AT"] = str(kill_at)
    if nan_steps:
        e["HNCLIP_TEST_NAN_STEPS"] = ",".join(map(str, nan_steps))
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", RUNNER, *overrides], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=timeout)


DDP_ARGS = ("--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no")


def launch_trainer(tmp_path, overrides, processes=2, launch_args=DDP_ARGS, env=None, timeout=400):
    """`accelerate launch --multi_gpu --num_processes N` (gloo on CPU) of the fault runner;
    launch_args replace the --multi_gpu... flags (e.g. a DeepSpeed --config_file)."""
    runner = Path(tmp_path) / "runner.py"
    runner.write_text(RUNNER)
    e = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1")
    e.update(env or {})
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", *launch_args, "--num_processes", str(processes), "--num_machines", "1",
           "--main_process_port", str(_free_port()), str(runner), *overrides]
    return subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=timeout)


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric_rows(run_dir):
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def step_losses(run_dir):
    return {r["step"]: r["loss/total"] for r in metric_rows(run_dir) if "loss/total" in r}


# -- runs in the background, for signals sent from outside as a scheduler sends them ------
def start_trainer(overrides, log_dir, env=None):
    """The fault runner in its own session (so its process group holds the trainer and its
    DataLoader workers only), output to log_dir/{stdout,stderr}.txt."""
    e = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1")
    e.update(env or {})
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", RUNNER, *overrides], cwd=ROOT, env=e,
                            start_new_session=True, stdout=open(log_dir / "stdout.txt", "w"),
                            stderr=open(log_dir / "stderr.txt", "w"))


def start_launch(tmp_path, overrides, log_dir, processes=2, env=None):
    """`accelerate launch --multi_gpu --num_processes N` of the fault runner, in the background."""
    runner = Path(tmp_path) / "runner.py"
    runner.write_text(RUNNER)
    e = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1")
    e.update(env or {})
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", *DDP_ARGS, "--num_processes", str(processes), "--num_machines", "1",
           "--main_process_port", str(_free_port()), str(runner), *overrides]
    return subprocess.Popen(cmd, cwd=ROOT, env=e, start_new_session=True,
                            stdout=open(log_dir / "stdout.txt", "w"),
                            stderr=open(log_dir / "stderr.txt", "w"))


def logged_steps(run_dir) -> int:
    try:
        return len([r for r in metric_rows(run_dir) if "loss/total" in r])
    except (FileNotFoundError, ValueError):
        return 0


def wait_until(pred, proc, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def descendants(pid) -> list:
    """pid and every process below it (what SLURM's proctrack/linuxproc signals, whatever the
    sessions: torch's elastic agent starts each rank in a session of its own)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def signal_all(pid, sig):
    for p in descendants(pid):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
