"""The embedded default, shrunk: a full run end to end, and its checkpoint loads in plain
open_clip with identical embeddings."""
import json
import subprocess
import sys

import open_clip
import pytest
import torch

from conftest import ROOT


@pytest.fixture(scope="module")
def run_dir(tiny_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "r"
    cmd = [sys.executable, "train/main.py", f"data.root={tiny_data}", f"run_dir={run}",
           "optim.steps=6", "optim.warmup_steps=2", "data.pairs_per_step=16", "data.set_items_per_step=12",
           "data.workers=0", "data.shuffle_buffer=16", "eval.every_steps=3", "logger.log_every=2",
           "checkpoint.every_steps=3"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return run, r.stdout


def test_run_leaves_everything(run_dir):
    run, stdout = run_dir
    assert (run / "config.yaml").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss/total" in r]
    assert [r["step"] for r in steps] == list(range(1, 7))
    for key in ("loss/clip", "loss/hn_i2t", "loss/hn_t2i", "loss/total", "lr", "logit_scale",
                "samples_per_s", "data_time"):
        assert all(key in r for r in steps), key
    evals = [r for r in rows if "eval/spec/mean/i2t" in r]
    assert [r["step"] for r in evals] == [3, 6]
    final = json.loads((run / "eval_final.json").read_text())
    for subset in ("absolute_size", "relative_size", "absolute_spatial", "relative_spatial", "existence",
                   "count"):
        assert 0 <= final[f"{subset}/i2t"] <= 100 and 0 <= final[f"{subset}/t2i"] <= 100
    assert "| mean |" in stdout and "step 6/6" in stdout
    assert any((run / "wandb").glob("offline-run-*"))


def test_checkpoint_round_trips_through_plain_open_clip(run_dir):
    run, _ = run_dir
    export = run / "final"
    # plain open_clip: register the exported config, load the weights by path
    open_clip.add_model_config(export / "hnclip-tiny.json")
    model, _, preprocess = open_clip.create_model_and_transforms(
        "hnclip-tiny", pretrained=str(export / "open_clip_pytorch_model.bin"))
    ckpt = torch.load(sorted((run / "checkpoints").iterdir())[-1] / "trainer.pt", weights_only=False)
    from train.models import create
    trained, *_ = create("hnclip-tiny")
    trained.load_state_dict(ckpt["model"])
    model.eval(), trained.eval()
    x = torch.randn(3, 3, 64, 64)
    tok = open_clip.get_tokenizer("hnclip-tiny")(["a photo of a ball", "the apple is small in the image",
                                                  "x"])
    with torch.no_grad():
        assert torch.equal(model.encode_image(x), trained.encode_image(x))
        assert torch.equal(model.encode_text(tok), trained.encode_text(tok))
        # and it is not just a fresh random model
        fresh, *_ = create("hnclip-tiny")
        assert not torch.allclose(fresh.encode_image(x), model.encode_image(x))
    # the local-dir form works too
    m2, _, _ = open_clip.create_model_and_transforms(f"local-dir:{export}")
    with torch.no_grad():
        assert torch.equal(m2.eval().encode_image(x), model.encode_image(x))
