"""train.api, the trainer as a library: compose() gives what the command line gives, plain
values set lists of sources without YAML in strings, a wrong key or value is a ConfigError
naming it, and the reproduction recipe goes through it (not through the train.main entry point)."""
import ast
from argparse import Namespace
from pathlib import Path

import pytest

from conftest import ROOT, compose as hydra_compose
from train import api
from train.config import ConfigError, validate
from train.repro import run


def test_compose_equals_the_command_line_path():
    ours = api.compose(["optim.steps=7"], world_size=1)
    assert ours == validate(hydra_compose(["optim.steps=7"]))


def test_values_set_lists_and_bad_keys_are_named():
    src = [{"urls": "d/p-{000000..000003}.tar", "weight": 2.0}]
    cfg = api.compose([], {"data.pairs": src, "data.sets": []}, world_size=1)
    assert [dict(s) for s in cfg.data.pairs] == src and list(cfg.data.sets) == []
    with pytest.raises(ConfigError, match="data.pairz"):
        api.compose([], {"data.pairz": src})
    with pytest.raises(ConfigError, match="optim.steps"):
        api.compose([], {"optim.steps": "many"})


def test_repro_stage_is_a_recipe_over_the_api():
    args = Namespace(stage="finetune", data="D", out="O", steps=3, lr=1e-3, warmup=0, seed=1, pairs=8,
                     init="base.bin", set_items=9, variant="hn", lam=0.5)
    overrides, values = run.stage_config(args, {"shards": {"pretrain": 1, "finetune": 2, "sets": 3}})
    assert not any("[" in o for o in overrides)  # no YAML lists written into strings
    cfg = api.compose(["experiment=repro_mini", *overrides], values, world_size=1)
    assert cfg.data.sets[0].urls == "D/sets/sets-{000000..000002}.tar"
    assert cfg.data.pairs[0].urls == "D/pairs/finetune-{000000..000001}.tar"
    assert (cfg.loss.clip_weight, cfg.loss.hn_weight, cfg.model.pretrained) == (0, 0.5, "base.bin")
    tree = ast.parse(Path(ROOT / "train/repro/run.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "train.main" not in imported
