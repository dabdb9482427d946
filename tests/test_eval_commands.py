"""The standalone commands on a tiny random open_clip model: train.evaluate writes JSON + the
reference table; train.wise_ft interpolates exactly (alpha 0 = initial, 1 = fine-tuned)."""
import json

import pytest
import torch
import yaml

import eval_fixtures as fx
from eval_toy import World
from train.eval.wise_ft import interpolate


def test_interpolate_endpoints_midpoint_and_integer_buffers():
    a = {"w": torch.zeros(2, 2), "ids": torch.arange(3)}
    b = {"w": torch.ones(2, 2) * 4, "ids": torch.arange(3) + 1}
    assert torch.equal(interpolate(a, b, 0.0)["w"], a["w"])
    assert torch.equal(interpolate(a, b, 1.0)["w"], b["w"])
    assert torch.equal(interpolate(a, b, 0.25)["w"], torch.ones(2, 2))
    assert torch.equal(interpolate(a, b, 0.5)["ids"], b["ids"])  # not weights: never averaged
    with pytest.raises(ValueError, match="differ"):
        interpolate(a, {"w": b["w"]}, 0.5)


@pytest.mark.slow
def test_evaluate_and_wise_ft_commands(tmp_path):
    from train import models
    from train.eval import evaluate as ev_cmd, wise_ft

    world = World()
    spec = fx.write_spec(world, tmp_path / "spec", subsets=(("count", 3),), sets=2)
    wino = fx.write_winoground(world, tmp_path / "wino", n=2)
    conf = tmp_path / "eval.yaml"
    conf.write_text(yaml.safe_dump({"benchmarks": ["spec", "winoground"], "batch_size": 16,
                                    "suites": {"spec": {"root": spec["root"], "classes": spec["classes"]},
                                               "winoground": wino}}))
    torch.manual_seed(0)
    init, *_ = models.create("hnclip-tiny")
    models.export_for_open_clip(init, "hnclip-tiny", tmp_path / "init")
    with torch.no_grad():
        for p in init.parameters():
            p.add_(0.05 * torch.randn_like(p))
    models.export_for_open_clip(init, "hnclip-tiny", tmp_path / "ft")

    r_init = ev_cmd.main([f"checkpoint={tmp_path / 'init'}", f"eval={conf}", f"out={tmp_path / 'e0'}"])
    r_ft = ev_cmd.main([f"checkpoint={tmp_path / 'ft'}", f"eval={conf}", f"out={tmp_path / 'e1'}"])
    saved = json.loads((tmp_path / "e0" / "results.json").read_text())["results"]
    assert saved == r_init and {"spec/count/i2t", "spec/count/cls", "winoground/group"} <= set(saved)
    assert "| spec/mean/i2t |" in (tmp_path / "e0" / "results.md").read_text()

    wise_ft.main([str(tmp_path / "ft"), "--initial", str(tmp_path / "init"), "--alphas", "0", "1",
                  "--eval", str(conf), "--out", str(tmp_path / "w")])
    sweep = json.loads((tmp_path / "w" / "wise_ft.json").read_text())["sweep"]
    assert sweep["0.0"] == r_init and sweep["1.0"] == r_ft
    assert (tmp_path / "w" / "wise_ft.png").is_file()


@pytest.mark.parametrize("group", ["default", "demo", "full"])
def test_every_eval_config_composes(group):
    from conftest import compose
    from train.config import validate
    from train.eval import check_options, suite_options
    cfg = validate(compose([f"eval={group}"]))
    for name in cfg.eval.benchmarks:
        check_options(name, suite_options(cfg.eval, name))


def test_top_level_commands_are_aliases_of_the_diagnosis_package():
    import subprocess
    import sys

    from train import dynamics, evaluate, wise_ft
    from train.eval import dynamics as dyn, evaluate as ev, wise_ft as wft
    assert (evaluate.main, dynamics.main, wise_ft.main) == (ev.main, dyn.main, wft.main)
    runs = [subprocess.run([sys.executable, "-m", m, "list=true"], capture_output=True, text=True)
            for m in ("train.evaluate", "train.eval.evaluate")]
    assert runs[0].returncode == 0 and "spec" in runs[0].stdout, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
