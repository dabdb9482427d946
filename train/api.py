"""The trainer as a library, for recipes that run several trainings in one process
(train/repro/run.py) and for notebooks: the path the command line takes (train/main.py),
without the command line.

    from train import api
    cfg = api.compose(["experiment=repro_mini", "optim.steps=100"],
                      values={"data.pairs": [{"urls": "d/p-{000000..000003}.tar", "weight": 1.0}]})
    summary = api.train(cfg)

compose() reads conf/ with Hydra's compose API (the overrides are Hydra's, as on the command
line), then sets `values` as plain Python values (a list of sources needs no YAML written into
a string), validates with the trainer's schema and settles the global batch for the world
size, exactly as train/main.py does before it trains."""
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .config import ConfigError, apply_global_batch, conf_dir, validate, world_size_from_env


def compose(overrides=(), values=None, config_name="config", world_size=None):
    """-> the validated config of conf/<config_name>.yaml + Hydra `overrides` + `values`
    ({dotted key: value}, set last). A key that is not in the config is a ConfigError."""
    from hydra import compose as hydra_compose, initialize_config_dir
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
    for key, value in (values or {}).items():
        if OmegaConf.select(cfg, key, default=KeyError) is KeyError:
            raise ConfigError(f"cannot set config key '{key}': not in the config")
        nested = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        try:  # a merge, not an assignment: it turns dicts into the schema's typed list items
            cfg = OmegaConf.merge(cfg, nested)
        except OmegaConfBaseException as e:
            raise ConfigError(f"cannot set config key '{key}' to {value!r}: {e}") from None
    world = world_size_from_env() if world_size is None else world_size
    return apply_global_batch(validate(cfg), world)


def train(cfg) -> dict:
    """Train one run from a validated config (compose()); returns the trainer's summary."""
    from .trainer import Trainer
    return Trainer(cfg).train()
