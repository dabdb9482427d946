"""Every config and preset composes and validates; bad overrides fail fast and say why."""
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException

from conftest import ROOT, compose
from train.config import ConfigError, validate


def group_options(group):
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["model", "data", "loss", "optim", "eval", "logger", "checkpoint"])
def test_every_group_option_composes(group):
    for option in group_options(group):
        cfg = validate(compose([f"{group}={option}"]))
        assert cfg.run_dir == "outputs/default"


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_composes_into_its_own_run_dir(experiment):
    cfg = validate(compose([f"experiment={experiment}"]))
    # the preset's run_name wins over the primary config's (the _self_ placement)
    assert (cfg.run_name, cfg.run_dir) == (experiment, f"outputs/{experiment}")
    # and the command line wins over the preset
    cfg = validate(compose([f"experiment={experiment}", "run_name=mine"]))
    assert cfg.run_dir == "outputs/mine"


@pytest.mark.parametrize("debug", group_options("debug"))
def test_every_debug_composes(debug):
    cfg = validate(compose([f"debug={debug}"]))
    assert cfg.optim.steps >= 1
    assert cfg.run_dir == f"outputs/debug_{debug}"  # never a real run's directory


def test_paper_preset_is_the_paper_recipe():
    cfg = validate(compose(["experiment=paper"]))
    # OpenAI's ViT-B/32 with the QuickGELU it was trained with
    assert (cfg.model.name, cfg.model.pretrained) == ("ViT-B-32-quickgelu", "openai")
    assert (cfg.optim.steps, cfg.optim.lr,
            cfg.optim.warmup_steps, cfg.optim.schedule) == (1000, 1e-6, 800, "cosine")
    assert cfg.loss.hn_weight == 0.2
    # the paper's global step, whatever the GPU count
    assert (cfg.data.global_pairs_per_step, cfg.data.global_set_items_per_step) == (2048, 768)


def test_default_is_tiny_and_fixed_run_dir():
    cfg = validate(compose())
    assert cfg.model.name == "hnclip-tiny" and cfg.model.pretrained is None
    assert "${now" not in str(cfg.run_dir)


def test_misspelled_key_fails_with_its_name():
    with pytest.raises(ConfigCompositionException, match="lrr"):
        compose(["optim.lrr=1e-3"])


def test_wrong_type_fails_with_key_name():
    # Hydra composes onto the typed schema, so this fails at composition, naming the key
    with pytest.raises(ConfigCompositionException, match="optim.steps"):
        compose(["optim.steps=many"])


def test_every_schema_key_is_settable_without_plus():
    cfg = validate(compose(["model.compile=true", "model.lock_text=true", "optim.eps=1e-8",
                            "data.lookahead_sets=4", "logger.run_name=x"]))
    assert cfg.model.compile and cfg.model.lock_text and cfg.optim.eps == 1e-8


def test_bad_choice_fails_with_choices():
    with pytest.raises(ConfigError, match="hn_negatives"):
        validate(compose(["loss.hn_negatives=everything"]))


def test_unknown_key_in_yaml_is_rejected():
    from omegaconf import OmegaConf
    # a plain (untyped) config, as a user's YAML loads, with a typo in it
    cfg = OmegaConf.create(OmegaConf.to_container(compose()))
    cfg.loss.hn_wieght = 0.5
    with pytest.raises(ConfigError, match="hn_wieght"):
        validate(cfg)


def test_bad_override_stops_main_before_work(tmp_path):
    r = subprocess.run([sys.executable, "train/main.py", "optim.steps=-3", f"run_dir={tmp_path}/run"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "optim.steps" in r.stderr
    # no work done: nothing written into the run directory
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_paper_preset_cfg_job_resolves_its_own_run_dir():
    r = subprocess.run([sys.executable, "train/main.py", "experiment=paper", "--cfg", "job", "--resolve"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "run_dir: outputs/paper" in r.stdout and "run_name: paper" in r.stdout
