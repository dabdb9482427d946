"""The paper recipe as a researcher runs it on day one, rehearsed offline: `pretrained: openai`
goes through open_clip's real hub download and load code (a local hub cache holds random
weights at the exact repository and file name open_clip asks for), `experiment=paper` runs on
two processes through `accelerate launch`, the export reloads in plain open_clip with
QuickGELU, and the evaluation command scores it. Overridden: the batch sizes, the shards (and
the data root holding them and the held-out set), the step count, and the loader's size for a
GPU node (8 workers and a 5,000-sample shuffle buffer per rank are 16 processes filling 80,000
samples on a 2-core machine: minutes before step 1). ViT-B/32 stays at 224 px."""
import json
import os
import subprocess
import sys

import open_clip
import pytest
import torch
from safetensors.torch import load_file

import hub_cache
from conftest import ROOT
from train import models

pytestmark = pytest.mark.slow
NAME, TAG = "ViT-B-32-quickgelu", "openai"   # what conf/model/vit_b32_openai.yaml builds


@pytest.fixture(scope="module")
def openai_hub(tmp_path_factory):
    """HF_HOME whose hub cache answers open_clip's request for ViT-B-32-quickgelu/openai."""
    home = tmp_path_factory.mktemp("hf_home")
    repo_id, filename = hub_cache.tag_location(NAME, TAG)
    assert (repo_id, filename) == ("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors")
    snap = hub_cache.put(home, repo_id,
                         {filename: hub_cache.safetensors_bytes(hub_cache.random_weights(NAME, 1234))})
    return home, snap / filename


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """The default data's generator, one held-out set per subset: ViT-B/32 evaluates on a CPU
    at about 2 images/s here."""
    out = tmp_path_factory.mktemp("paper_data") / "data"
    subprocess.run([sys.executable, "-m", "hn_data.make_default", f"out={out}", "pair_shards=2",
                    "pairs_per_shard=16", "set_shards=2", "sets_per_subset=4",
                    "heldout_per_subset=1"], check=True, cwd=ROOT, capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="module")
def paper_run(openai_hub, small_data, tmp_path_factory):
    home, _ = openai_hub
    data = small_data
    run = tmp_path_factory.mktemp("paper") / "run"
    env = dict(os.environ, HF_HOME=str(home), HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    venv_accelerate = ROOT / ".venv" / "bin" / "accelerate"
    cmd = [str(venv_accelerate) if venv_accelerate.exists() else "accelerate",
           "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "train/main.py", "experiment=paper",
           f"data.root={data}",
           f"data.pairs.0.urls='{data}/pairs/pairs-{{000000..000001}}.tar'",
           f"data.sets.0.urls='{data}/sets/sets-{{000000..000001}}.tar'",
           "data.global_pairs_per_step=4", "data.global_set_items_per_step=4", "optim.steps=2",
           "data.workers=1", "data.shuffle_buffer=16", f"run_dir={run}"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-5000:])
    return run, r.stdout


def last_checkpoint_state(run):
    path = sorted((run / "checkpoints").glob("step-*"))[-1] / "trainer.pt"
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def test_paper_recipe_on_two_processes_starts_from_the_hub_weights(paper_run, openai_hub):
    run, stdout = paper_run
    _, cached_file = openai_hub
    # the paper's global batch, split over the two ranks, said at start-up
    assert "world size 2; per rank 2 pairs + 2 set items; global 4 pairs + 4 set items per step" in stdout
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss/total" in r] == [1, 2]
    assert all(r["loss/hn_i2t"] > 0 for r in rows if "loss/total" in r)
    # the step-0 weights are the cached file's: two steps at the paper's warm-up LR
    # (1e-6 / 800 per step) move no weight by 1e-7, and no initialisation lands within 1e-7 of
    # a file whose every weight carries its own N(0, 0.02) noise
    cached = load_file(str(cached_file))
    trained = last_checkpoint_state(run)
    assert set(trained) == set(cached)
    assert max((trained[k] - cached[k]).abs().max().item() for k in cached) < 1e-7
    assert any((trained[k] != cached[k]).any() for k in cached)  # and it did train


def embed(model):
    torch.manual_seed(3)
    x = torch.randn(2, 3, 224, 224)
    tok = open_clip.get_tokenizer(NAME)(["a big dog", "a small cat on the left"])
    with torch.no_grad():
        return model.eval().encode_image(x), model.encode_text(tok)


def test_export_reloads_in_plain_open_clip_with_quick_gelu(paper_run):
    run, _ = paper_run
    final = run / "final"
    assert json.loads((final / f"{NAME}.json").read_text())["quick_gelu"] is True
    trained = last_checkpoint_state(run)
    # plain open_clip, no hnclip: the built-in name with the weights file, and local-dir:
    weights = str(final / "open_clip_pytorch_model.bin")
    by_path, _, _ = open_clip.create_model_and_transforms(NAME, pretrained=weights)
    by_dir, _, _ = open_clip.create_model_and_transforms(f"local-dir:{final}")
    for m in (by_path, by_dir):
        assert models.uses_quick_gelu(m)
        assert all(torch.equal(m.state_dict()[k], trained[k]) for k in trained)
    a, b = embed(by_path), embed(by_dir)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_evaluation_command_scores_the_run_with_its_activation(paper_run, small_data, monkeypatch):
    run, _ = paper_run
    from train.eval import evaluate
    seen = []

    def load_and_record(*args):  # the command's own loader; remember what it built
        out = load(*args)
        seen.append(models.uses_quick_gelu(out[0]))
        return out

    load = evaluate.load
    monkeypatch.setattr(evaluate, "load", load_and_record)
    results = evaluate.main([f"checkpoint={run}", "benchmarks=[spec]", f"data_root={small_data}"])
    assert seen == [True]
    on_disk = json.loads((run / "eval" / "results.json").read_text())["results"]
    assert on_disk == results
    for subset in ("absolute_size", "relative_size", "absolute_spatial", "relative_spatial", "existence",
                   "count"):
        assert 0 <= results[f"spec/{subset}/i2t"] <= 100
    # the trainer's own final evaluation ran too
    assert json.loads((run / "eval_final.json").read_text())
