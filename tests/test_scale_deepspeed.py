"""launch/: every accelerate config parses with accelerate's own loader; the DeepSpeed JSON
files pass DeepSpeed's own validation once the trainer filled their "auto" values; and ZeRO-3
(the hardest: sharded weights) trains, evaluates and exports on 2 CPU processes."""
import importlib.util
import json

import pytest
import torch
from omegaconf import OmegaConf

from conftest import ROOT, compose
from scale_helpers import launch_trainer, metric_rows, tiny_overrides
from train import checkpoint as ckpt
from train.config import validate
from train.trainer import fill_deepspeed_config

CONFIGS = sorted((ROOT / "launch/accelerate").glob("*.yaml"))
HAVE_DEEPSPEED = all(importlib.util.find_spec(m) for m in ("deepspeed", "transformers"))


def test_accelerate_configs_parse():
    from accelerate.commands.config.config_args import load_config_from_file
    names = {p.stem for p in CONFIGS}
    assert {"1gpu", "1node_8gpu", "multi_node",
            "deepspeed_zero1", "deepspeed_zero2", "deepspeed_zero3"} <= names
    for path in CONFIGS:
        c = load_config_from_file(str(path))  # unknown keys raise here
        # bf16 and compile are the trainer's switches (model.precision, model.compile)
        assert c.mixed_precision in ("no", None) or c.distributed_type.value == "DEEPSPEED", path
        assert c.num_processes >= 1 and c.num_machines >= 1


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_deepspeed_configs_validate(stage):
    from accelerate.commands.config.config_args import load_config_from_file
    acc = load_config_from_file(str(ROOT / f"launch/accelerate/deepspeed_zero{stage}.yaml"))
    ds_path = ROOT / acc.deepspeed_config["deepspeed_config_file"]
    ds = json.loads(ds_path.read_text())
    assert ds["zero_optimization"]["stage"] == stage and ds["bf16"]["enabled"] is True
    cfg = validate(compose(["debug=one_step"]))
    on8 = fill_deepspeed_config(json.loads(ds_path.read_text()), cfg, world=8)
    micro = cfg.data.pairs_per_step + cfg.data.set_items_per_step
    assert on8["train_micro_batch_size_per_gpu"] == micro and on8["train_batch_size"] == 8 * micro
    assert on8["gradient_clipping"] == cfg.optim.grad_clip
    assert "auto" not in json.dumps(on8)
    fill_deepspeed_config(ds, cfg, world=1)  # DeepSpeedConfig checks against this process's world (1)
    with pytest.raises(ValueError, match="accum_steps"):
        fill_deepspeed_config(dict(ds), OmegaConf.merge(cfg, {"optim": {"accum_steps": 2}}), world=8)
    if HAVE_DEEPSPEED:
        from deepspeed.runtime.config import DeepSpeedConfig
        assert DeepSpeedConfig(ds).zero_optimization_stage == stage  # pydantic: typos raise
        ds["zero_optimization"]["stagee"] = stage
        with pytest.raises(Exception, match="stagee"):
            DeepSpeedConfig(ds)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_DEEPSPEED, reason="pip install -e '.[deepspeed]' to run DeepSpeed on CPU")
def test_zero3_trains_evaluates_exports_on_two_cpu_processes(tiny_data, tmp_path):
    run = tmp_path / "run"
    over = tiny_overrides(tiny_data, run, steps=3, **{"checkpoint.every_steps": 2, "eval.every_steps": 2,
                                                      "eval.benchmarks": "[spec]", "deterministic": "false"})
    r = launch_trainer(tmp_path, over,
                       launch_args=("--config_file", "launch/accelerate/deepspeed_zero3.yaml"))
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    rows = metric_rows(run)
    losses = [x["loss/total"] for x in rows if "loss/total" in x]
    assert len(losses) == 3 and all(0 < loss < 20 for loss in losses)
    assert [x["step"] for x in rows if "eval/spec/mean/i2t" in x] == [2, 3]
    last = ckpt.latest(run)
    assert ckpt.step_of(last) == 3 and (last / "engine").is_dir()
    # the export has open_clip's own shapes and dtype (logit_scale 0-d, fp32)
    state = torch.load(run / "final/open_clip_pytorch_model.bin")
    assert state["logit_scale"].shape == () and state["visual.conv1.weight"].dtype == torch.float32
