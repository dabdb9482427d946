"""Tiny SigLIP, CoCa and a LoRA-adapted CLIP on two processes (torchrun, gloo, DDP, float64) give
the same losses and parameter gradients as one process on the concatenated global batch; ranks
hold different numbers of pairs, set items and caption tokens, so the count weighting is
exercised."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import family_lib as FL
from conftest import ROOT
from family_dist_worker import run_case

TOL = 1e-9


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("family_dist")
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "tests/family_dist_worker.py", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


@pytest.mark.slow
def test_ranks_really_are_uneven():
    tok = FL.make_model("coca")[1]
    a, b = (FL.rank_batch("coca", r, tok) for r in range(2))
    assert a["pairs"]["images"].shape[0] != b["pairs"]["images"].shape[0]
    assert a["sets"]["tokens"].shape[0] != b["sets"]["tokens"].shape[0]
    assert a["sets"]["images"].shape[0] != b["sets"]["images"].shape[0]
    assert (a["sets"]["cap_img"] < 0).any() or (b["sets"]["cap_img"] < 0).any()   # text-only captions


@pytest.mark.slow
@pytest.mark.parametrize("case", list(FL.CASES))
def test_two_processes_equal_one_process(two_ranks, case):
    model, tok = FL.make_case_model(case)
    logs, grads = run_case(model, FL.global_batch(case, tok), case)
    keys = ["loss/total", "loss/clip", "loss/hn_i2t", "loss/hn_t2i"]
    keys += ["loss/caption"] if case == "coca" else []
    for r in range(2):
        rank_logs, rank_grads = torch.load(two_ranks / f"{case}_rank{r}.pt")
        for k in keys:
            assert _rel(rank_logs[k], logs[k]) < TOL, (k, float(rank_logs[k]), float(logs[k]))
        assert set(rank_grads) == set(grads) and len(grads) > 20
        if case.endswith("_lora"):   # the frozen base gets no gradient, the adapters all do
            assert all(n.endswith((".A", ".B")) for n in grads) and len(grads) == 2 * 4 * 4
        for n, g in grads.items():
            assert g.abs().max() > 0, n   # every weight is reached, so the comparison means something
            assert _rel(rank_grads[n], g) < TOL, (n, _rel(rank_grads[n], g))
