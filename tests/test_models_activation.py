"""Every preset builds the activation its pretrained weights were trained with; a mismatch is
an error at composition; an export reloads in plain open_clip with the same activation."""
import json

import open_clip
import pytest
import torch
from omegaconf import OmegaConf

from conftest import ROOT, compose
from train import models
from train.config import ConfigError, validate

PRESETS = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))


def expected_quick_gelu(name, pretrained):
    """What the weights were trained with: the tag's record in open_clip, else (random init
    or our own file) the config's."""
    tag = models.tag_quick_gelu(name, pretrained)
    return tag if tag is not None else bool(open_clip.get_model_config(name).get("quick_gelu", False))


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_builds_the_activation_of_its_weights(preset):
    m = validate(compose([f"model={preset}"])).model
    # the architecture open_clip builds for the name, on the meta device: no memory, no
    # weights, no tokenizer download, so ViT-H/14 costs what the tiny model does
    with torch.device("meta"):
        model = open_clip.create_model(m.name, device="meta")
    assert models.uses_quick_gelu(model) == expected_quick_gelu(m.name, m.pretrained)


def test_openai_preset_is_quick_gelu():
    m = validate(compose(["model=vit_b32_openai"])).model
    assert m.pretrained == "openai" and models.tag_quick_gelu(m.name, m.pretrained) is True


def test_activation_mismatch_fails_at_composition():
    with pytest.raises(ConfigError, match=r"ViT-B-32 builds GELU.*QuickGELU.*model.name=ViT-B-32-quickgelu"):
        validate(compose(["model=vit_b32_openai", "model.name=ViT-B-32"]))
    # the reverse: a GELU tag on a QuickGELU config
    with pytest.raises(ConfigError, match="builds QuickGELU"):
        validate(compose(["model.name=ViT-B-32-quickgelu", "model.pretrained=laion2b_s34b_b79k"]))
    # and create() refuses it too (evaluation commands call it directly)
    with pytest.raises(ValueError, match="QuickGELU"):
        models.create("ViT-B-32", "openai")


def test_pretrained_with_a_schema_name_is_refused():
    with pytest.raises(ConfigError, match="brings its own weights"):
        validate(compose(["model.name=local-dir:/somewhere", "model.pretrained=openai"]))


@pytest.fixture()
def tiny_quick(tmp_path):
    """hnclip-tiny with QuickGELU, registered like any user config."""
    cfg = json.loads((ROOT / "train" / "model_configs" / "hnclip-tiny.json").read_text())
    cfg["quick_gelu"] = True
    path = tmp_path / "cfg" / "hnclip-tiny-qg.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return "hnclip-tiny-qg"


def embeddings(model, name):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    tok = open_clip.get_tokenizer(name)(["a small red ball", "two dogs on the left"])
    with torch.no_grad():
        return model.eval().encode_image(x), model.encode_text(tok)


def test_quick_gelu_export_reloads_in_plain_open_clip(tiny_quick, tmp_path):
    torch.manual_seed(0)
    trained, *_ = models.create(tiny_quick)
    assert models.uses_quick_gelu(trained)
    out = tmp_path / "final"
    models.export_for_open_clip(trained, tiny_quick, out)
    written = json.loads((out / f"{tiny_quick}.json").read_text())
    assert written["quick_gelu"] is True
    assert json.loads((out / "open_clip_config.json").read_text())["model_cfg"]["quick_gelu"] is True
    ref_img, ref_txt = embeddings(trained, tiny_quick)
    # a fresh process would know the name only from the exported file: drop ours first
    open_clip.factory._MODEL_CONFIGS.pop(tiny_quick)
    open_clip.add_model_config(out / f"{tiny_quick}.json")
    by_path, _, _ = open_clip.create_model_and_transforms(tiny_quick,
                                                          pretrained=str(out / "open_clip_pytorch_model.bin"))
    by_dir, _, _ = open_clip.create_model_and_transforms(f"local-dir:{out}")
    for loaded in (by_path, by_dir):
        assert models.uses_quick_gelu(loaded)
        img, txt = embeddings(loaded, tiny_quick)
        assert torch.equal(img, ref_img) and torch.equal(txt, ref_txt)
    # the same weights in a GELU network give other embeddings: the activation is what is tested
    gelu = dict(written, quick_gelu=False)
    model = open_clip.model.CLIP(**gelu)
    model.load_state_dict(torch.load(out / "open_clip_pytorch_model.bin", weights_only=True))
    assert not torch.allclose(embeddings(model, tiny_quick)[0], ref_img, atol=1e-4)


def test_export_refuses_a_name_whose_builtin_activation_differs(tmp_path):
    model, *_ = models.create("hnclip-tiny")
    for m in model.modules():  # a network that runs QuickGELU under a GELU config's name
        for name, child in m.named_children():
            if isinstance(child, torch.nn.GELU):
                setattr(m, name, open_clip.transformer.QuickGELU())
    with pytest.raises(ValueError, match="activation"):
        models.export_for_open_clip(model, "hnclip-tiny", tmp_path / "final")


def test_export_names_for_schema_models(tmp_path):
    model, *_ = models.create("hnclip-tiny")
    out = tmp_path / "a" / "final"
    models.export_for_open_clip(model, "hnclip-tiny", out)
    # a local-dir export of ours keeps its name; a hub repo gives its last part
    assert models.export_name(f"local-dir:{out}") == "hnclip-tiny"
    assert models.export_name("hf-hub:some-org/My.Model_v2") == "My.Model_v2"
    assert models.export_name("local-dir:/x/y/") == "y"
    again = tmp_path / "b"
    models.export_for_open_clip(model, f"local-dir:{out}", again)
    assert sorted(p.name for p in again.iterdir()) == ["hnclip-tiny.json", "open_clip_config.json",
                                                       "open_clip_pytorch_model.bin"]
    cfg = OmegaConf.load(again / "open_clip_config.json")
    assert cfg.preprocess_cfg.size in (64, [64, 64])
