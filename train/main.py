"""Entry point: `accelerate launch train/main.py [hydra overrides]` (installed: `hnclip-train`).
Parse -> validate -> settle the batch for the world size -> train. Exit code 2: the config is
wrong (nothing was done); 3: checkpointed on a signal, requeue me."""
import os
import sys

import hydra
from omegaconf import DictConfig

if __package__ in (None, ""):  # run as a file (accelerate launch train/main.py): find the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from train.config import ConfigError, apply_global_batch, conf_dir, validate, world_size_from_env  # noqa: E402

CONFIG_ERROR_EXIT_CODE = 2
REQUEUE_EXIT_CODE = 3


def _fail(e):
    if int(os.environ.get("RANK", "0")) == 0:  # every rank fails alike; one says why
        print(f"hnclip: {e}", file=sys.stderr)
    sys.exit(CONFIG_ERROR_EXIT_CODE)


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="config")
def main(cfg: DictConfig):
    try:
        cfg = apply_global_batch(validate(cfg), world_size_from_env())
    except ConfigError as e:
        _fail(e)
    from train.api import train
    from train.trainer import StopRequested
    try:
        train(cfg)
    except ConfigError as e:  # e.g. a resume onto a run directory made with another config
        _fail(e)
    except StopRequested as e:
        print(f"hnclip: {e}", file=sys.stderr)
        sys.exit(REQUEUE_EXIT_CODE)


if __name__ == "__main__":
    main()
