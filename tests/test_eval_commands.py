"""The standalone commands on a tiny random open_clip model: train.evaluate writes JSON + the
reference table; train.wise_ft interpolates exactly (alpha 0 = initial, 1 = fine-tuned);
train.dynamics evaluates a run's checkpoints with eval-config overrides; both refuse bad keys
and values with exit 2 before any work."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import eval_fixtures as fx
from eval_toy import World
from train.eval.wise_ft import interpolate

ROOT = Path(__file__).resolve().parents[1]


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

    wise_ft.main([f"finetuned={tmp_path / 'ft'}", f"initial={tmp_path / 'init'}", "alphas=[0,1]",
                  f"eval={conf}", f"out={tmp_path / 'w'}"])
    sweep = json.loads((tmp_path / "w" / "wise_ft.json").read_text())["sweep"]
    assert sweep["0.0"] == r_init and sweep["1.0"] == r_ft
    assert (tmp_path / "w" / "wise_ft.png").is_file()


@pytest.mark.parametrize("argv, words", [
    (["alphas=[0,1.5]"], ["alphas=[0.0, 1.5]", "[0, 1]"]),
    (["alphas=[]"], ["alphas=[]"]),
    (["initial=A", "initial_model=ViT-B-32"], ["initial and initial_model"]),
    (["initial_pretrained=openai"], ["initial_pretrained needs initial_model"]),
    ([], ["no run config.yaml", "initial="]),            # the run's start is unknown
    (["alpha=[0,1]"], ["unknown config key 'alpha'", "alphas"]),
    (["--alphas", "0", "1"], ["'--alphas' is not an option", "alphas=VALUE"]),
])
def test_wise_ft_refuses_bad_input_before_any_work(tmp_path, capsys, argv, words):
    from train.eval import wise_ft
    (tmp_path / "ft").mkdir()
    with pytest.raises(SystemExit) as e:
        wise_ft.main([f"finetuned={tmp_path / 'ft'}", f"out={tmp_path / 'never'}", *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("hnclip-wise-ft: "), err
    assert all(w in err for w in words), err
    assert not (tmp_path / "never").exists()


def _tiny_run(tmp_path, world):
    """A run directory as the trainer leaves it: config.yaml and two trainer checkpoints of the tiny
    model (different weights), the run's eval config pointing at a SPEC root that does not exist."""
    from omegaconf import OmegaConf

    from train import models
    spec = fx.write_spec(world, tmp_path / "spec", subsets=(("count", 3),), sets=2)
    run = tmp_path / "run"
    run.mkdir()
    gone = {"root": str(tmp_path / "gone"), "classes": spec["classes"]}
    OmegaConf.save({"model": {"name": "hnclip-tiny", "pretrained": None}, "seed": 0,
                    "data": {"root": str(tmp_path)},
                    "eval": {"benchmarks": ["spec"], "batch_size": 16, "suites": {"spec": gone}}},
                   run / "config.yaml")
    torch.manual_seed(0)
    model, *_ = models.create("hnclip-tiny")
    for step in (10, 20):
        (run / "checkpoints" / f"step-{step:07d}").mkdir(parents=True)
        torch.save({"model": model.state_dict()}, run / "checkpoints" / f"step-{step:07d}" / "trainer.pt")
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return run, spec


@pytest.mark.slow
def test_dynamics_evaluates_the_checkpoints_with_the_eval_overrides_as_a_user_would(tmp_path):
    run, spec = _tiny_run(tmp_path, World())
    cmd = [sys.executable, "-m", "train.dynamics", f"run_dir={run}", "checkpoints=true", "batch_size=8",
           "skills=(count)/(i2t|t2i)$"]
    # the run's own eval config names a SPEC root that is gone: the override must reach the evaluation
    broken = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert broken.returncode != 0 and "gone" in broken.stderr, broken.stderr[-2000:]
    r = subprocess.run(cmd + [f"suites.spec.root={spec['root']}"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    saved = json.loads((run / "dynamics" / "history.json").read_text())
    assert sorted(saved["history"]) == ["10", "20"]
    assert sorted(saved["kendall_tau"]) == ["spec/count/i2t", "spec/count/t2i"]  # the skills regex
    assert "spec/count/cls" in saved["history"]["10"]
    assert (run / "dynamics" / "skills.png").is_file()
    bad = subprocess.run([sys.executable, "-m", "train.dynamics", f"run_dir={run}", "checkpoint=true"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "'checkpoint'" in bad.stderr and "checkpoints" in bad.stderr


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
