"""A tiny SigLIP and a tiny CoCa trained by the real entry point on two processes
(`accelerate launch --multi_gpu --num_processes 2 train/main.py`, gloo): the first step's
logged losses equal one process's on the two ranks' batches concatenated, and a brute-force
reference of the formulas; the export loads in plain open_clip with the trained weights."""
import json
import os

import pytest
import torch

import family_lib as FL
from scale_helpers import DDP_ARGS, ROOT, _free_port, metric_rows, tiny_overrides
from test_families import _reference_step
from train import checkpoint as ckpt, families
from train.config import LossConfig
from train.step import forward_losses

# The real entry point, with each rank's first batch and starting weights saved from outside
# (the product carries no test switches), as tests/scale_helpers.py does for faults.
RUNNER = r'''
import os, sys
sys.path.insert(0, os.getcwd())
import torch
import train.trainer as T
orig = T.forward_losses
seen = []
def forward_losses(model, batch, loss_cfg, device="cpu"):
    if not seen:
        seen.append(1)
        inner = model.module if hasattr(model, "module") else model
        torch.save({"batch": batch, "state": {k: v.detach().clone() for k, v in inner.state_dict().items()}},
                   os.path.join(os.environ["HNCLIP_TEST_DUMP"], f"rank{os.environ.get('RANK', '0')}.pt"))
    return orig(model, batch, loss_cfg, device)
T.forward_losses = forward_losses
sys.argv = ["train/main.py"] + sys.argv[1:]
import runpy
runpy.run_path("train/main.py", run_name="__main__")
'''


def _launch(tmp_path, overrides):
    import subprocess
    import sys
    from pathlib import Path
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1",
               HNCLIP_TEST_DUMP=str(tmp_path))
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", *DDP_ARGS, "--num_processes", "2", "--num_machines", "1",
           "--main_process_port", str(_free_port()), str(runner), *overrides]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)


def _concat(batches):
    """The ranks' batches as one process's batch (set indices renumbered)."""
    from train.accumulate import merge_sets
    return {"pairs": {k: torch.cat([b["pairs"][k] for b in batches]) for k in ("images", "tokens")},
            "sets": merge_sets([b["sets"] for b in batches])}


@pytest.mark.slow
@pytest.mark.parametrize("family,extra", [("siglip", {"loss.hn_form": "sigmoid"}), ("coca", {})])
def test_two_process_training_equals_one_process_and_reference(tiny_data, tmp_path, family, extra):
    run = tmp_path / "run"
    over = tiny_overrides(tiny_data, run, steps=2, **{"model.name": FL.MODELS[family], **extra})
    r = _launch(tmp_path, over)
    assert r.returncode == 0, r.stderr[-4000:]
    rows = [x for x in metric_rows(run) if "loss/total" in x]
    assert [x["step"] for x in rows] == [1, 2]
    first = rows[0]

    dumps = [torch.load(tmp_path / f"rank{k}.pt", weights_only=False) for k in range(2)]
    assert dumps[0]["batch"]["pairs"]["images"].shape[0] == 8          # really two ranks of 8 pairs
    model, _ = FL.make_model(family, torch.float32)
    model.load_state_dict(dumps[0]["state"])
    cfg = LossConfig(**{k.split(".")[1]: v for k, v in extra.items()})
    batch = _concat([d["batch"] for d in dumps])
    _, logs = forward_losses(model, batch, cfg)
    keys = ["loss/total", "loss/clip", "loss/hn_i2t", "loss/hn_t2i"]
    keys += ["loss/caption"] if family == "coca" else []
    for k in keys:
        assert abs(first[k] - float(logs[k])) <= 2e-5 * abs(float(logs[k])), (k, first[k], float(logs[k]))

    # brute force, float64
    model64 = model.double()
    b64 = {"pairs": dict(batch["pairs"], images=batch["pairs"]["images"].double()),
           "sets": dict(batch["sets"], images=batch["sets"]["images"].double())}
    ref_total = _reference_step(family, model64, b64, cfg)[0]
    assert abs(first["loss/total"] - ref_total) <= 1e-4 * abs(ref_total), (first["loss/total"], ref_total)

    # the export is plain open_clip: same family, the trained weights
    import open_clip
    exported, _, _ = open_clip.create_model_and_transforms(
        FL.MODELS[family], pretrained=str(run / "final" / "open_clip_pytorch_model.bin"))
    trained = ckpt.load(ckpt.latest(run))["model"]
    for k, v in exported.state_dict().items():
        assert torch.equal(v, trained[k]), k
    assert families.detect(exported) == family
    cfg_json = json.loads((run / "final" / "open_clip_config.json").read_text())["model_cfg"]
    assert ("multimodal_cfg" in cfg_json) == (family == "coca")
    assert ("init_logit_bias" in cfg_json) == (family == "siglip")
