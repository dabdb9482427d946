"""Any open_clip model name trains and exports: a hub repository (hf-hub:, offline from a
local hub cache) and an exported folder (local-dir:), each loading back in plain open_clip."""
import os
import subprocess
import sys

import open_clip
import pytest
import torch

import hub_cache
from conftest import ROOT
from train import models

pytestmark = pytest.mark.slow


def train_one_step(run, data, name, hf_home):
    env = dict(os.environ, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "train/main.py", "debug=one_step", "eval.benchmarks=[]", f"model.name={name}",
           f"data.root={data}", f"run_dir={run}"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return run / "final"


def trained_state(run):
    path = sorted((run / "checkpoints").glob("step-*"))[-1] / "trainer.pt"
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def max_diff(a, b):
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_hf_hub_and_local_dir_models_train_and_export(tiny_data, tmp_path):
    hf_home = tmp_path / "hf"
    start = hub_cache.random_weights("hnclip-tiny", seed=7)
    hub_cache.put(hf_home, "hnclip-test/tiny-clip",
                  hub_cache.open_clip_repo_files(models.model_config("hnclip-tiny"), start))

    final = train_one_step(tmp_path / "hub_run", tiny_data, "hf-hub:hnclip-test/tiny-clip", hf_home)
    assert sorted(p.name for p in final.iterdir()) == ["open_clip_config.json", "open_clip_pytorch_model.bin",
                                                       "tiny-clip.json"]
    trained = trained_state(tmp_path / "hub_run")
    # it started from the hub file (one step of lr 5e-4 away), not from a random init
    torch.manual_seed(0)
    fresh = open_clip.create_model("hnclip-tiny").state_dict()
    assert max_diff(trained, start) < 5e-3 < max_diff(trained, fresh)

    by_dir, _, _ = open_clip.create_model_and_transforms(f"local-dir:{final}")
    assert max_diff(by_dir.state_dict(), trained) == 0

    # the export is itself a model name: train from it, export again
    final2 = train_one_step(tmp_path / "dir_run", tiny_data, f"local-dir:{final}", hf_home)
    assert (final2 / "tiny-clip.json").is_file()
    open_clip.add_model_config(final2 / "tiny-clip.json")
    by_path, _, _ = open_clip.create_model_and_transforms(
        "tiny-clip", pretrained=str(final2 / "open_clip_pytorch_model.bin"))
    trained2 = trained_state(tmp_path / "dir_run")
    assert max_diff(by_path.state_dict(), trained2) == 0
    assert max_diff(trained2, trained) < 5e-3  # started where the first run ended
