"""Every config and preset composes and validates; bad overrides fail fast and say why."""
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError

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
def test_every_experiment_composes(experiment):
    validate(compose([f"experiment={experiment}"]))


@pytest.mark.parametrize("debug", group_options("debug"))
def test_every_debug_composes(debug):
    cfg = validate(compose([f"debug={debug}"]))
    assert cfg.optim.steps >= 1


def test_paper_preset_is_the_paper_recipe():
    cfg = validate(compose(["experiment=paper"]))
    assert (cfg.model.name, cfg.model.pretrained) == ("ViT-B-32", "openai")
    assert (cfg.optim.steps, cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.schedule) == (1000, 1e-6, 800, "cosine")
    assert cfg.loss.hn_weight == 0.2
    # per-rank counts x 8 GPUs = the paper's global step
    assert (cfg.data.pairs_per_step * 8, cfg.data.set_items_per_step * 8) == (2048, 768)


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
    # no work done: only Hydra's own log folder may exist
    assert not (tmp_path / "run" / "config.yaml").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()
