"""Entry point: `accelerate launch train/main.py [hydra overrides]`.
Parse -> validate -> train. Exit code 3 means "checkpointed on a signal, requeue me"."""
import sys

import hydra
from omegaconf import DictConfig

from train.config import ConfigError, validate

REQUEUE_EXIT_CODE = 3


def run(cfg) -> dict:
    from train.trainer import Trainer
    return Trainer(cfg).train()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig):
    try:
        cfg = validate(cfg)
    except ConfigError as e:
        print(f"hnclip: {e}", file=sys.stderr)
        sys.exit(2)
    from train.trainer import StopRequested
    try:
        run(cfg)
    except StopRequested as e:
        print(f"hnclip: {e}", file=sys.stderr)
        sys.exit(REQUEUE_EXIT_CODE)


if __name__ == "__main__":
    main()
