"""The schema is closed and checked: unknown keys (with or without '+') name the nearest valid
ones, out-of-range values name the key, every default has one value, and a global batch is
split over the world size or refused before any work."""
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from assert_lib import assert_misspelled_key_exits_2
from conftest import ROOT, compose
from train.config import Config, ConfigError, apply_global_batch, batch_summary, validate


@pytest.mark.parametrize("override, named, nearest", [
    ("+optim.setps=5", "optim.setps", "optim.steps"),
    ("+loss.hn_wieght=0.5", "loss.hn_wieght", "loss.hn_weight"),
    ("+data.pairs_per_stp=4", "data.pairs_per_stp", "data.pairs_per_step"),
    ("+speed=fast", "speed", "seed"),
])
def test_unknown_key_added_with_plus_fails_naming_nearest(override, named, nearest):
    with pytest.raises(ConfigError) as e:
        validate(compose([override]))
    assert f"'{named}'" in str(e.value) and nearest in str(e.value).split("nearest valid keys:")[1]


def test_unknown_key_inside_a_source_list_item():
    with pytest.raises(ConfigError, match=r"'data.pairs.0.wieght'.*data.pairs.weight"):
        validate(compose(["+data.pairs.0.wieght=2"]))


def test_free_form_suite_options_stay_open():
    cfg = validate(compose(["+eval.suites.spec.anything=1"]))
    assert cfg.eval.suites.spec.anything == 1


def test_plus_typo_exits_2_from_the_command_line(tmp_path):
    r = subprocess.run([sys.executable, "train/main.py", "+optim.setps=5", f"run_dir={tmp_path}/run"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "optim.setps" in r.stderr and "optim.steps" in r.stderr


@pytest.mark.parametrize("argv, named, nearest", [
    (["optim.setps=5"], "optim.setps", "optim.steps"),                 # no '+': Hydra would exit 1
    (["-m", "optim.setps=5,6"], "optim.setps", "optim.steps"),         # a multirun sweep
    (["--cfg", "job", "expriment=paper"], "expriment", "experiment"),  # a config group, printing only
    (["data.pairs.0.wieght=2"], "data.pairs.0.wieght", "data.pairs.weight"),
])
def test_a_misspelled_key_exits_2_naming_the_nearest_before_hydra(tmp_path, argv, named, nearest):
    assert_misspelled_key_exits_2(["train/main.py", *argv, f"run_dir={tmp_path}/run"], "hnclip",
                                  named, nearest, tmp_path / "run")


def test_the_command_line_key_check_passes_every_kind_of_valid_key():
    from train.config import check_override_keys
    check_override_keys(["optim.lr=1e-3", "data.pairs.0.weight=2", "+eval.suites.spec.anything=1",
                         "experiment=paper", "+debug=one_step", "model=tiny", "hydra.run.dir=x",
                         "hydra/job_logging=none", "~model.pretrained", "model.lora.layers=[0,1]",
                         "optim.lr=1e-3,1e-4"])
    for bad in ("optim.lrr=1", "+data.pairs.x.weight=1", "seed.value=1", "model.lora.rnk=2"):
        with pytest.raises(ConfigError, match="unknown config key"):
            check_override_keys([bad])


@pytest.mark.parametrize("override, key", [
    ("optim.lr=-1e-3", "optim.lr"), ("optim.lr=0", "optim.lr"), ("loss.hn_weight=-1", "loss.hn_weight"),
    ("optim.warmup_steps=-5", "optim.warmup_steps"), ("loss.clip_weight=-0.5", "loss.clip_weight"),
    ("optim.weight_decay=-0.1", "optim.weight_decay"), ("optim.beta2=1.0", "optim.beta2"),
    ("optim.eps=0", "optim.eps"), ("optim.grad_clip=-1", "optim.grad_clip"),
    ("data.workers=-1", "data.workers"), ("checkpoint.keep_last=0", "checkpoint.keep_last"),
    ("checkpoint.every_steps=-10", "checkpoint.every_steps"), ("eval.batch_size=0", "eval.batch_size"),
    ("logger.log_every=0", "logger.log_every"),
    ("data.global_pairs_per_step=0", "data.global_pairs_per_step"),
    ("data.pairs.0.weight=0", "data.pairs.0.weight"),
    ("data.set_items_per_step=1", "data.set_items_per_step"),
])
def test_out_of_range_value_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose([override]))


def test_boundary_values_are_accepted():
    cfg = validate(compose(["loss.hn_weight=0", "optim.warmup_steps=0", "optim.grad_clip=0",
                            "data.workers=0", "checkpoint.every_steps=0", "data.set_items_per_step=0"]))
    assert cfg.loss.hn_weight == 0 and cfg.optim.warmup_steps == 0


def test_nothing_to_train_is_refused():
    with pytest.raises(ConfigError, match="hn_weight and loss.clip_weight"):
        validate(compose(["loss.hn_weight=0", "loss.clip_weight=0"]))


def test_one_value_per_default():
    """The composed default config equals the schema's defaults, key by key: the YAML group
    files and train/config.py cannot disagree."""
    schema = OmegaConf.to_container(OmegaConf.structured(Config), resolve=False)
    composed = OmegaConf.to_container(validate(compose()), resolve=False)
    composed.pop("hydra", None)
    assert composed == schema


@pytest.mark.parametrize("world, accum, pairs, items", [(1, 1, 2048, 768), (8, 1, 256, 96), (4, 2, 256, 96)])
def test_global_batch_splits_over_world_and_accumulation(world, accum, pairs, items):
    cfg = validate(compose(["experiment=paper", f"optim.accum_steps={accum}"]))
    apply_global_batch(cfg, world)
    assert (cfg.data.pairs_per_step, cfg.data.set_items_per_step) == (pairs, items)
    assert "global 2048 pairs + 768 set items" in batch_summary(cfg, world)


def test_per_rank_keys_rule_without_global_ones():
    cfg = apply_global_batch(validate(compose(["data.pairs_per_step=10"])), 4)
    assert cfg.data.pairs_per_step == 10
    assert batch_summary(cfg, 4) == ("world size 4; per rank 10 pairs + 24 set items; "
                                     "global 40 pairs + 96 set items per step")


def test_indivisible_global_batch_is_refused():
    cfg = validate(compose(["experiment=paper"]))
    with pytest.raises(ConfigError, match=r"global_pairs_per_step=2048 does not divide by world size 5.*"
                                          r"global_set_items_per_step=768 does not divide by world size 5"):
        apply_global_batch(cfg, 5)
    cfg = validate(compose(["data.global_set_items_per_step=6"]))
    with pytest.raises(ConfigError, match="1 set item per rank"):
        apply_global_batch(cfg, 6)


def test_indivisible_global_batch_exits_2_before_any_work(tmp_path):
    # WORLD_SIZE is what accelerate launch / torchrun hand each process
    env = dict(os.environ, WORLD_SIZE="3", RANK="0")
    r = subprocess.run([sys.executable, "train/main.py", "data.global_pairs_per_step=64",
                        f"run_dir={tmp_path}/run"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                        env=env)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "data.global_pairs_per_step=64" in r.stderr and "world size 3" in r.stderr
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
