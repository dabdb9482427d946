"""Entry point: `accelerate launch train/main.py [hydra overrides]` (installed: `hnclip-train`).
Parse -> validate -> settle the batch for the world size -> train. Exit code 2: the config is
wrong (nothing was done); 3: checkpointed on a signal, requeue me."""
import os
import sys

import hydra
from omegaconf import DictConfig

if __package__ in (None, ""):  # run as a file (accelerate launch train/main.py): find the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from train.config import (  # noqa: E402
    ConfigError,
    apply_global_batch,
    check_override_keys,
    conf_dir,
    validate,
    world_size_from_env,
)

CONFIG_ERROR_EXIT_CODE = 2
REQUEUE_EXIT_CODE = 3


def _fail(e):
    if int(os.environ.get("RANK", "0")) == 0:  # every rank fails alike; one says why
        print(f"hnclip: {e}", file=sys.stderr)
    sys.exit(CONFIG_ERROR_EXIT_CODE)


def check_command_line(argv) -> None:
    """A misspelled key exits 2 naming the nearest valid keys, as the schema check does, rather
    than 1 with Hydra's 'Could not override' at composition. With another config
    (--config-name, --config-dir, --config-path) Hydra alone judges the keys."""
    from hydra._internal.utils import get_args_parser
    flags = get_args_parser().parse_args(argv)
    if flags.config_name or flags.config_dir or flags.config_path or flags.shell_completion:
        return
    try:
        check_override_keys(flags.overrides)
    except ConfigError as e:
        _fail(e)


def main():
    check_command_line(sys.argv[1:])
    _hydra_main()


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="config")
def _hydra_main(cfg: DictConfig):
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
