"""Correctness of the training benchmark's pieces (bench/): log parsing, steady-state sums,
the open_clip command line, the loss-memory probe and the ratios. No timed assertions."""
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import bench_train, open_clip_arm  # noqa: E402
from bench.measure import loss_memory, steady_state, synthetic_sets  # noqa: E402

OPEN_CLIP_LOG = """\
2026-11-23,17:28:42 | INFO | Train Epoch: 0 [  64/1280 (5%)] Data (t): 0.511 Batch (t): 2.000, 32.0/s, 32.0/s/gpu LR: 0.1
2026-11-23,17:28:43 | INFO | Start epoch 0
2026-11-23,17:28:44 | INFO | Train Epoch: 0 [ 128/1280 (10%)] Data (t): 0.010 Batch (t): 0.200, 320.0/s, 320.0/s/gpu LR: 0.1
2026-11-23,17:28:45 | INFO | Train Epoch: 0 [1280/1280 (100%)] Data (t): 0.030 Batch (t): 0.600, 106.7/s, 106.7/s/gpu LR: 0.1
"""  # noqa: E501 (open_clip's log lines verbatim, as the parser meets them)


def test_parse_open_clip_log_reads_every_step_in_order():
    steps, data = open_clip_arm.parse_log(OPEN_CLIP_LOG)
    assert steps == [2.0, 0.2, 0.6]
    assert data == [0.511, 0.01, 0.03]


def test_parse_open_clip_log_without_steps_names_the_problem():
    with pytest.raises(RuntimeError, match="no 'Train Epoch' lines"):
        open_clip_arm.parse_log("Traceback: something broke\n")


def test_steady_state_skips_warmup_and_uses_the_median_step():
    s = steady_state([5.0, 0.1, 0.3, 0.2], [4.0, 0.01, 0.03, 0.02], samples_per_step=64, warmup=1)
    assert s["steps"] == 3
    assert s["samples_per_s"] == pytest.approx(64 / 0.2)
    assert s["samples_per_s_mean"] == pytest.approx(192 / 0.6)  # total over total, not mean of rates
    assert s["data_share"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="warm-up"):
        steady_state([0.1], [0.0], 64, warmup=1)


def test_open_clip_gets_the_same_model_batch_precision_and_optimizer():
    p = {"model": "hnclip-tiny", "pairs": 64, "precision": "bf16", "workers": 1, "steps": 12,
         "pairs_urls": "d/pairs-{000000..000007}.tar"}
    optim = SimpleNamespace(lr=5e-4, weight_decay=0.1, beta1=0.9, beta2=0.98, eps=1e-6, warmup_steps=30,
                            grad_clip=1.0)
    cmd = open_clip_arm.argv(p, optim, "/tmp/logs", "x")
    flag = lambda f: cmd[cmd.index(f) + 1]
    assert cmd[1].endswith("run_open_clip_train.py")
    assert (flag("--model"), flag("--batch-size"), flag("--precision")) == ("hnclip-tiny", "64", "amp_bf16")
    assert flag("--train-num-samples") == str(12 * 64)
    assert (flag("--wd"), flag("--beta2"), flag("--grad-clip-norm")) == ("0.1", "0.98", "1.0")


# Each in a fresh interpreter: registering in this process would make every later test see the
# configs whether or not the product's own registration (train/models.py) works. The stub
# stands for open_clip_train.main and records what open_clip knows when the wrapper hands over.
_WRAPPER = """
import sys, types, open_clip
seen = []
stub = types.ModuleType("open_clip_train.main")
stub.main = lambda argv: seen.append("hnclip-tiny" in open_clip.list_models())
sys.modules.setdefault("open_clip_train", types.ModuleType("open_clip_train"))
sys.modules["open_clip_train.main"] = stub
before = "hnclip-tiny" in open_clip.list_models()
from bench import run_open_clip_train
run_open_clip_train.main([])
print(before, seen)
"""
_PRODUCT = """
import open_clip
before = "hnclip-tiny" in open_clip.list_models()
import train.models
print(before, "hnclip-tiny" in open_clip.list_models())
"""


def _fresh(code):
    import subprocess
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_open_clip_wrapper_registers_our_model_configs():
    assert _fresh(_WRAPPER) == ["False", "[True]"]


def test_the_product_registers_our_model_configs_on_import():
    assert _fresh(_PRODUCT) == ["False", "True"]


def test_synthetic_sets_are_a_valid_index():
    from train.losses import check_set_index
    check_set_index(synthetic_sets(12, k=3))  # raises on inconsistent links


def test_loss_memory_per_rank_is_linear_in_the_global_batch():
    # memory = a + b * global at a fixed local batch: each doubling adds twice the last increment
    one, two, four = (loss_memory(8, 6, w, dim=16) for w in (1, 2, 4))
    assert two > one and (four - two) == pytest.approx(2 * (two - one), rel=0.1)
    # one rank holding the whole batch: local x global, so the increments themselves grow
    a, b, c = (loss_memory(n, 0, 1, dim=16) for n in (8, 16, 32))
    assert (c - b) > 2.2 * (b - a)


def test_ratios_are_taken_within_a_round_then_medianed():
    arm = lambda sps, step, n=64: {"samples_per_s": sps, "step_s": step, "images_per_step": n}
    rounds = [{"ours_pairs": arm(300, 0.2), "open_clip": arm(200, 0.3), "ours_sets": arm(330, 0.8 / 3, 88)},
              {"ours_pairs": arm(100, 0.6), "open_clip": arm(80, 0.8), "ours_sets": arm(110, 0.8, 88)}]
    assert bench_train.ratio(rounds, "ours_pairs", "open_clip") == pytest.approx((1.5 + 1.25) / 2)
    per_item = bench_train.per_item_ratio(rounds, "ours_sets", "ours_pairs")
    assert per_item == pytest.approx(((0.8 / 3 / 88) / (0.2 / 64) + (0.8 / 88) / (0.6 / 64)) / 2)
    assert bench_train.ratio(rounds, "vit_ours", "vit_open_clip") is None
