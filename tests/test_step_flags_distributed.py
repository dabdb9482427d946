"""Two CPU processes (gloo, `accelerate launch`): a forward that raises FloatingPointError on
rank 1 alone. Every rank must still enter the gradient all-reduce and the step's one flag
collective, so both skip that step together, the run finishes (no wait for the collective
timeout), the ranks' weights stay equal and the counters say one skipped step."""
import pytest
import torch

from scale_helpers import launch_trainer, metric_rows, tiny_overrides


@pytest.mark.slow
@pytest.mark.parametrize("accum", [1, 2])
def test_a_raising_loss_on_one_rank_is_skipped_by_both(tiny_data, tmp_path, accum):
    run, weights = tmp_path / "run", tmp_path / "weights"
    weights.mkdir()
    # a hang would end at the collective timeout with an error: keep it short
    over = tiny_overrides(tiny_data, run, steps=4, **{"optim.accum_steps": accum,
                                                      "distributed.timeout_s": 90})
    r = launch_trainer(tmp_path, over, env={"HNCLIP_TEST_RAISE_AT": "2:1",
                                            "HNCLIP_TEST_WEIGHTS_DIR": str(weights)})
    assert r.returncode == 0, r.stderr[-3000:]
    said = "step 2: non-finite loss or gradient, step skipped (1 in a row, 1 in total; non-finite loss)"
    assert said in r.stdout
    rows = [x for x in metric_rows(run) if "loss/total" in x]
    assert [x["step"] for x in rows] == [1, 2, 3, 4]
    assert [x["step_skipped"] for x in rows] == [0, 1, 0, 0]
    assert rows[-1]["nonfinite_steps"] == 1
    assert rows[1]["loss/total"] != rows[1]["loss/total"]  # the skipped step logs NaN
    w0, w1 = (torch.load(weights / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert w0.keys() == w1.keys()
    for k in w0:
        assert torch.equal(w0[k], w1[k]), f"{k} differs between the ranks"
