"""The trainer on 2 CPU processes through `accelerate launch` (gloo), with feature-cached
accumulation across DDP: a NaN on one rank makes both skip the step; a signal reaching only
rank 1 makes *both* ranks checkpoint and stop;
the relaunch resumes and finishes with every step logged once."""
import pytest

from scale_helpers import launch_trainer, metric_rows, tiny_overrides
from train import checkpoint as ckpt


@pytest.mark.slow
def test_two_processes_signal_on_one_rank_then_resume(tiny_data, tmp_path):
    run = tmp_path / "run"
    over = tiny_overrides(tiny_data, run, steps=4, **{"optim.accum_steps": 2})
    # rank 1 alone sees a NaN loss at step 1: both ranks must skip it (no hang, no update)
    r = launch_trainer(tmp_path, over, env={"HNCLIP_TEST_SIGNAL_AT": "2:1", "HNCLIP_TEST_NAN_STEPS": "1",
                                            "HNCLIP_TEST_NAN_RANK": "1"})
    assert r.returncode != 0, "a signalled run must not report success"
    # rank 1 signals itself during step 3; both ranks stop before step 4
    assert "signal 10: checkpointed at step 3" in r.stderr, r.stderr[-3000:]
    assert "a signal to another rank: checkpointed at step 3" in r.stderr
    first = ckpt.latest(run)
    assert ckpt.step_of(first) == 3
    assert sorted(p.name for p in first.glob("rng-rank*.pt")) == ["rng-rank0.pt", "rng-rank1.pt"]

    r = launch_trainer(tmp_path, over)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stdout and "at step 3" in r.stdout
    rows = [x for x in metric_rows(run) if "loss/total" in x]
    assert [x["step"] for x in rows] == [1, 2, 3, 4]
    assert [x["step_skipped"] for x in rows] == [1, 0, 0, 0] and rows[-1]["nonfinite_steps"] == 1
    # 2 ranks x 2 micro-batches x (8 pairs + 6 set items) per step
    assert rows[-1]["samples_seen"] == 4 * 2 * 2 * 14
    assert ckpt.load(ckpt.latest(run))["world_size"] == 2
