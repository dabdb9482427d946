"""The open_clip side of the benchmark: the command line that gives open_clip's own trainer
the same model, shards, batch size, precision, workers and optimizer settings as ours, and
the parser that reads its per-step times back from its log."""
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PRECISION = {"fp32": "fp32", "bf16": "amp_bf16"}  # ours (autocast) -> open_clip's name for it

# "Train Epoch: 0 [ 896/1280 (70%)] Data (t): 0.011 Batch (t): 9.367, 6.83/s, ..."
LINE = re.compile(r"Train Epoch: \d+ \[\s*(\d+)/\d+ .*?Data \(t\): ([\d.]+) Batch \(t\): ([\d.]+),")


def argv(p, optim, logs_dir, name):
    """open_clip_train.main arguments for benchmark params p and our optimizer config optim.
    Logging every step makes each logged 'Batch (t)' one step's wall time (open_clip resets
    its meters at every log line)."""
    steps = p["steps"]
    return [sys.executable, str(HERE / "run_open_clip_train.py"),
            "--model", p["model"], "--train-data", p["pairs_urls"], "--dataset-type", "webdataset",
            "--dataset-resampled", "--train-num-samples", str(steps * p["pairs"]),
            "--batch-size", str(p["pairs"]), "--precision", PRECISION[p["precision"]],
            "--workers", str(p["workers"]), "--epochs", "1", "--log-every-n-steps", "1",
            "--logs", str(logs_dir), "--name", name, "--report-to", "none", "--save-frequency", "0",
            "--lr", str(optim.lr), "--wd", str(optim.weight_decay), "--beta1", str(optim.beta1),
            "--beta2", str(optim.beta2), "--eps", str(optim.eps), "--warmup", str(optim.warmup_steps),
            "--grad-clip-norm", str(optim.grad_clip), "--seed", "0", "--device", p.get("device", "cpu")]


def parse_log(text):
    """-> (step wall times, data times) in seconds, one per logged step, in order."""
    steps, data = [], []
    for m in LINE.finditer(text):
        data.append(float(m.group(2)))
        steps.append(float(m.group(3)))
    if not steps:
        tail = "\n".join(text.splitlines()[-15:])
        raise RuntimeError(f"open_clip's log has no 'Train Epoch' lines; its output ended with:\n{tail}")
    return steps, data
