"""A run directory belongs to one run: resuming it with a config that changes the result stops
with exit 2 naming the keys and leaves every byte of the directory as it was; changes that do
not alter what is trained (more steps, logging, workers) resume and are said."""
import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from conftest import ROOT, compose
from train import run_compat
from train.config import validate


def snapshot(run):
    return {str(p.relative_to(run)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(run.rglob("*"))}


def train(run, data, *extra):
    # no evaluation: what is tested here ends before it
    cmd = [sys.executable, "train/main.py", "debug=one_step", "eval.benchmarks=[]", f"data.root={data}",
           f"run_dir={run}", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_changed_result_key_stops_and_leaves_run_dir_identical(tiny_data, tmp_path):
    run = tmp_path / "run"
    first = train(run, tiny_data)
    assert first.returncode == 0, first.stderr[-3000:]
    before = snapshot(run)
    assert "config.yaml" in before and any(k.startswith("checkpoints/") for k in before)

    r = train(run, tiny_data, "loss.hn_weight=0", "optim.lr=1e-3")
    assert r.returncode == 2, r.stderr[-3000:]
    assert "loss.hn_weight" in r.stderr and "optim.lr" in r.stderr and "run_name=" in r.stderr
    assert snapshot(run) == before

    # more steps and another print interval: allowed, said, and the run continues from step 1
    r = train(run, tiny_data, "optim.steps=2", "logger.log_every=1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "changed settings (allowed): logger.log_every: 20 -> 1; optim.steps: 1 -> 2" in r.stdout
    assert "resumed from" in r.stdout and "step 2/2" in r.stdout

    # checkpoint.resume=false starts fresh: the old run is set aside whole, never mixed in
    old_metrics = (run / "metrics.jsonl").read_bytes()
    r = train(run, tiny_data, "checkpoint.resume=false", "loss.hn_weight=0")
    assert r.returncode == 0, r.stderr[-3000:]
    [moved] = list((run / "replaced").iterdir())
    assert (moved / "metrics.jsonl").read_bytes() == old_metrics
    assert sorted(p.name for p in (moved / "checkpoints").iterdir()) == ["step-0000001", "step-0000002"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-0000001"]
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    assert "hn_weight: 0" in (run / "config.yaml").read_text()


def cfg_dict(*overrides):
    return OmegaConf.to_container(validate(compose(list(overrides))), resolve=True)


def test_differences_split_blocking_from_allowed():
    saved = cfg_dict()
    blocking, allowed = run_compat.differences(saved, cfg_dict("optim.steps=900", "data.workers=4",
                                                               "eval.every_steps=7", "checkpoint.keep_last=5",
                                                               "run_name=renamed", "run_dir=outputs/default"))
    assert blocking == []
    assert [k for k, _, _ in allowed] == ["checkpoint.keep_last", "data.workers", "eval.every_steps",
                                          "optim.steps", "run_name"]
    for override, key in (("model.precision=bf16", "model.precision"),
                          ("optim.warmup_steps=3", "optim.warmup_steps"),
                          ("data.pairs_per_step=8", "data.pairs_per_step"), ("seed=4", "seed"),
                          ("loss.hn_negatives=set", "loss.hn_negatives"),
                          ("data.pairs.0.urls='/elsewhere/{0..3}.tar'", "data.pairs.0.urls")):
        blocking, _ = run_compat.differences(saved, cfg_dict(override))
        assert [k for k, _, _ in blocking] == [key], override


def test_fewer_steps_is_not_an_extension():
    # the README's `optim.steps=50` after a 300-step run would train nothing and relabel the weights
    blocking, _ = run_compat.differences(cfg_dict(), cfg_dict("optim.steps=50"))
    assert blocking == [("optim.steps", 300, 50)]


def test_global_batch_compares_the_global_key_not_the_per_rank_share():
    saved = cfg_dict("data.global_pairs_per_step=64")
    saved["data"]["pairs_per_step"] = 32      # as written by a 2-rank run
    now = cfg_dict("data.global_pairs_per_step=64")
    now["data"]["pairs_per_step"] = 16        # the same recipe resumed on 4 ranks
    assert run_compat.differences(saved, now) == ([], [])
    now["data"]["global_pairs_per_step"] = 128
    assert [k for k, _, _ in run_compat.differences(saved, now)[0]] == ["data.global_pairs_per_step"]


def test_a_key_missing_from_an_older_config_counts_as_its_default():
    saved = cfg_dict()
    del saved["data"]["global_pairs_per_step"]
    del saved["data"]["decode"]                # default "pil", not null
    assert run_compat.differences(saved, cfg_dict()) == ([], [])
    # but a non-default value for a key the old run did not have is a change
    changed = run_compat.differences(saved, cfg_dict("data.decode=tensor"))[0]
    assert [k for k, _, _ in changed] == ["data.decode"]


def test_no_check_without_a_checkpoint_or_with_resume_off(tmp_path):
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(cfg_dict("loss.hn_weight=0.7")))
    cfg = validate(compose())
    assert run_compat.check(cfg, tmp_path, has_checkpoint=False) == ""
    with pytest.raises(run_compat.ResumeConflict, match="loss.hn_weight"):
        run_compat.check(cfg, tmp_path, has_checkpoint=True)
    fresh = validate(compose(["checkpoint.resume=false"]))
    assert run_compat.check(fresh, tmp_path, has_checkpoint=True) == ""
