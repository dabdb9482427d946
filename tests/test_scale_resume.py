"""Exact resume: SIGKILL after step 8 (last checkpoint at 6), resume, and the per-step losses
equal an uninterrupted run's bit for bit (CPU, deterministic); metrics hold each step once;
the wandb run id is kept. Plus non-finite steps: skipped, counted, and a clean stop."""
import math

import pytest
import torch

from scale_helpers import metric_rows, run_trainer, step_losses, tiny_overrides
from train import checkpoint as ckpt


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("ref") / "run"
    r = run_trainer(tiny_overrides(tiny_data, run, steps=12))
    assert r.returncode == 0, r.stderr[-3000:]
    return run


@pytest.mark.slow
def test_sigkill_then_resume_reproduces_losses(tiny_data, reference, tmp_path):
    run = tmp_path / "run"
    over = tiny_overrides(tiny_data, run, steps=12, **{"checkpoint.every_steps": 6,
                                                       "logger.wandb": "true"})
    r = run_trainer(over, kill_at=8)
    assert r.returncode == -9, (r.returncode, r.stderr[-2000:])
    assert ckpt.step_of(ckpt.latest(run)) == 6
    killed_rows = [row["step"] for row in metric_rows(run) if "loss/total" in row]
    assert killed_rows == list(range(1, 9))  # steps 7, 8 ran but are not in the checkpoint
    wandb_id = (run / "wandb_id.txt").read_text()

    r = run_trainer(over)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stdout and "at step 6" in r.stdout
    rows = [row["step"] for row in metric_rows(run) if "loss/total" in row]
    assert rows == list(range(1, 13)), "every step must be logged exactly once"
    ref, got = step_losses(reference), step_losses(run)
    assert got == ref, {s: (ref[s], got[s]) for s in ref if ref[s] != got[s]}
    assert (run / "wandb_id.txt").read_text() == wandb_id
    state = ckpt.load(ckpt.latest(run))
    ref_state = ckpt.load(ckpt.latest(reference))
    assert state["step"] == 12 and state["samples_seen"] == ref_state["samples_seen"] == 12 * 14
    for k, v in ref_state["model"].items():
        assert torch.equal(v, state["model"][k]), k


@pytest.mark.slow
def test_nonfinite_steps_are_skipped_counted_and_many_stop(tiny_data, reference, tmp_path):
    """NaN loss at steps 3-4 (skipped, run goes on), then at 7-9: three in a row stop it."""
    run = tmp_path / "run"
    r = run_trainer(tiny_overrides(tiny_data, run, steps=12, **{"checkpoint.every_steps": 2,
                                                                 "optim.max_nonfinite_in_row": 3}),
                    nan_steps=(3, 4, 7, 8, 9))
    assert r.returncode != 0
    rows = {row["step"]: row for row in metric_rows(run) if "loss/total" in row}
    assert [rows[s]["step_skipped"] for s in range(1, 10)] == [0, 0, 1, 1, 0, 0, 1, 1, 1]
    assert rows[9]["nonfinite_steps"] == 5 and math.isnan(rows[3]["loss/total"])
    assert max(rows) == 9, "the run must stop at the third non-finite step in a row"
    ref = step_losses(reference)
    assert rows[2]["loss/total"] == ref[2]
    # a skipped step leaves the weights untouched: step 5 sees step-2 weights on step-5 data,
    # unlike the reference, whose weights moved at steps 3 and 4
    assert math.isfinite(rows[5]["loss/total"]) and rows[5]["loss/total"] != ref[5]
    assert "non-finite loss or gradient, step skipped" in r.stdout
    assert "3 non-finite steps in a row (steps 7..9)" in r.stderr
    # periodic saves pause inside a streak: the latest checkpoint is the last good step
    assert "step-0000006" in r.stderr and ckpt.step_of(ckpt.latest(run)) == 6
