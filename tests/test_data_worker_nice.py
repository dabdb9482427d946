"""data.worker_nice: the loader's workers run that much nicer than the trainer, so where they
share cores with the step the step goes first; 0 leaves them at the trainer's priority."""
import os

import pytest
import torch

from conftest import compose
from train.config import ConfigError, validate
from train.data.steps import make_loader, spec_from_config


class NiceTokenizer:
    """Tokenizes in the worker, so each caption's tokens carry the worker's niceness."""
    def __call__(self, texts):
        return torch.full((len(texts), 4), os.nice(0), dtype=torch.long)


def _worker_niceness(tiny_data, nice):
    cfg = validate(compose([f"data.root={tiny_data}", "data.set_items_per_step=0", "data.pairs_per_step=4"]))
    spec = spec_from_config(cfg.data, cfg.seed, 0, 1)
    preprocess = lambda img: torch.zeros(3, 8, 8)  # noqa: E731
    step = next(iter(make_loader(spec, preprocess, NiceTokenizer(), 1, worker_nice=nice)))
    return int(step["pairs"]["tokens"][0, 0])


def test_workers_run_nicer_by_worker_nice(tiny_data):
    base = os.nice(0)
    if base + 5 > 19:
        pytest.skip("this process is already at the lowest priority")
    assert _worker_niceness(tiny_data, 0) == base
    assert _worker_niceness(tiny_data, 5) == base + 5
    assert os.nice(0) == base  # the trainer itself is untouched


def test_default_and_bounds():
    assert validate(compose([])).data.worker_nice == 10
    for bad in ("-1", "20"):
        with pytest.raises(ConfigError, match="data.worker_nice"):
            validate(compose([f"data.worker_nice={bad}"]))
