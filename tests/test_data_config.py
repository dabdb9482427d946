"""The real Hydra data config, composed as the trainer composes it, builds a loader whose steps
have exactly data.pairs_per_step pairs and data.set_items_per_step set images."""
import warnings

import pytest

from conftest import compose
from train.config import validate
from train.data.steps import make_loader, spec_from_config


def test_default_config_gives_fixed_size_steps(tiny_data):
    import open_clip

    import train.models  # noqa: F401  (importing it registers our model configs with open_clip)
    cfg = validate(compose([f"data.root={tiny_data}", "data.workers=0"]))
    spec = spec_from_config(cfg.data, cfg.seed, 0, 1)
    _, preprocess, _ = open_clip.create_model_and_transforms(cfg.model.name)
    tokenizer = open_clip.get_tokenizer(cfg.model.name)
    it = iter(make_loader(spec, preprocess, tokenizer, 0))
    for _ in range(2):
        st = next(it)
        assert st["pairs"]["images"].shape[0] == cfg.data.pairs_per_step == st["pairs"]["tokens"].shape[0]
        assert st["sets"]["images"].shape[0] == cfg.data.set_items_per_step
        assert st["sets"]["tokens"].shape[0] == st["sets"]["cap_set"].shape[0] >= cfg.data.set_items_per_step


def test_epoch_mode_warns_that_weights_are_ignored(tiny_data):
    src = f"{tiny_data}/pairs/pairs-{{000000..000003}}.tar"
    src2 = f"{tiny_data}/pairs/pairs-{{000004..000007}}.tar"
    cfg = validate(compose([f"data.root={tiny_data}", "data.resampled=false",
                            f"data.pairs=[{{urls: '{src}', weight: 3}}, {{urls: '{src2}', weight: 1}}]"]))
    with pytest.warns(UserWarning, match="weights are ignored in epoch mode"):
        spec_from_config(cfg.data, 0, 0, 1)
    cfg = validate(compose([f"data.root={tiny_data}"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec_from_config(cfg.data, 0, 0, 1)
