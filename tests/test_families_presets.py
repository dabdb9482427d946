"""The large-tower presets compose, pass the activation check against their pretrained tag,
and build (on the meta device: no weights, no download) the network and family they claim."""
import open_clip
import pytest
import torch
import yaml

from conftest import ROOT, compose
from train import families, models
from train.config import validate

PRESETS = {  # preset: (family, QuickGELU, parameters in millions, launch config)
    "vit_l14_openai": ("clip", True, 427.6, "vit_l14_8gpu.yaml"),
    "vit_h14_laion": ("clip", False, 986.1, "vit_h14_zero3.yaml"),
    "siglip_b16": ("siglip", False, 203.2, "siglip_b16_8gpu.yaml"),
}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_builds_what_it_claims(preset):
    family, quick, millions, launch = PRESETS[preset]
    cfg = validate(compose([f"model={preset}"]))
    assert models.pretrained_problem(cfg.model.name, cfg.model.pretrained) is None
    assert cfg.model.precision == "bf16" and cfg.model.grad_checkpointing
    with torch.device("meta"):
        m = open_clip.create_model(cfg.model.name, device="meta")
    assert families.detect(m) == family
    assert models.uses_quick_gelu(m) == quick
    assert abs(sum(p.numel() for p in m.parameters()) / 1e6 - millions) < 0.1
    acc = yaml.safe_load((ROOT / "launch" / "accelerate" / launch).read_text())
    assert acc["num_processes"] == 8 and acc["distributed_type"] in ("MULTI_GPU", "DEEPSPEED")
    if acc["distributed_type"] == "DEEPSPEED":
        assert (ROOT / acc["deepspeed_config"]["deepspeed_config_file"]).is_file()


def test_the_plain_l14_name_with_openai_weights_is_refused():
    # the trap the -quickgelu preset avoids
    assert "QuickGELU" in models.pretrained_problem("ViT-L-14", "openai")
