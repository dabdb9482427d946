"""Two processes (torchrun, gloo, CPU) give the same loss, logs and parameter gradients as one
process on the concatenated global batch; bad data on one rank stops both ranks together."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dist_losses_worker as W
from conftest import ROOT

TOL = {torch.float64: 1e-9, torch.float32: 1e-5}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist_losses")
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "tests/dist_losses_worker.py", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    ranks = [torch.load(out / f"rank{k}.pt") for k in range(2)]
    if W.deepspeed_stages():
        ranks += [torch.load(out / f"deepspeed_rank{k}.pt") for k in range(2)]
    return ranks


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(W.CASES))
def test_two_processes_equal_one_process(two_ranks, case):
    dtype = W.CASES[case][0]
    tol = TOL[dtype]
    model = W.make_model(dtype)
    logs, grads = W.run_case(model, W.global_batch(case, dtype), case)
    for rank_logs, rank_grads in (two_ranks[0][case], two_ranks[1][case]):
        for k in ("loss/total", "loss/clip", "loss/hn_i2t", "loss/hn_t2i"):
            assert _rel(rank_logs[k], logs[k]) < tol, (k, float(rank_logs[k]), float(logs[k]))
        assert set(rank_grads) == set(grads)
        for n, g in grads.items():
            assert g.abs().max() > 0, n   # every weight is reached, so the comparison means something
            assert _rel(rank_grads[n], g) < tol, (n, _rel(rank_grads[n], g))


@pytest.mark.slow
def test_uneven_case_really_is_uneven():
    # the count weighting in train/step.py is only exercised if ranks hold different counts
    p = [W.rank_batch("f64_uneven", r, torch.float64) for r in range(2)]
    assert p[0]["sets"]["images"].shape[0] != p[1]["sets"]["images"].shape[0]
    assert p[0]["pairs"]["images"].shape[0] != p[1]["pairs"]["images"].shape[0]
    q = [W.rank_batch("f64_default", r, torch.float64) for r in range(2)]
    assert q[0]["sets"]["tokens"].shape[0] != q[1]["sets"]["tokens"].shape[0]      # captions differ
    assert (q[0]["sets"]["cap_img"] < 0).any()                                      # text-only captions


@pytest.mark.slow
def test_bad_input_on_one_rank_stops_both(two_ranks):
    a, b = two_ranks[0]["bad_input"], two_ranks[1]["bad_input"]
    assert a == b, (a, b)          # same error text on both ranks: decided on gathered data
    assert a["nan_image"].startswith("NonFiniteFeatures: non-finite set_image_features")
    assert "has 1 caption(s); a set needs at least 2" in a["one_caption_set"]
    assert "lies outside its set" in a["caption_outside_set"]
    counts = ("rank 0: 4 pairs, 6 set images, 14 set captions, 3 sets; "
              "rank 1: 4 pairs, 6 set images, 6 set captions")
    assert all(counts in m for m in a.values())


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_equals_one_process(two_ranks, stage):
    # DeepSpeed reduces gradients itself (no DDP): the gather's backward and the count
    # weighting must give the global-batch gradient there too
    if stage not in W.deepspeed_stages():
        pytest.skip(f"ZeRO-{stage} not run: deepspeed not installed or not in HNCLIP_TEST_DEEPSPEED")
    model = W.make_model(torch.float32, scale_shape=(1,))
    logs, grads = W.run_case(model, W.global_batch("f32_default", torch.float32), "f32_default")
    for r in range(2):
        rank_logs, rank_grads = two_ranks[2 + r][f"zero{stage}"]
        assert _rel(rank_logs["loss/total"], logs["loss/total"]) < 1e-5
        for n, g in grads.items():
            assert _rel(rank_grads[n], g) < 1e-5, (n, _rel(rank_grads[n], g))
