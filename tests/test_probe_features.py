"""Forward hooks read the image tower's residual stream at the right place; joint training
gets gradients; VSR jsonl loading; the command end to end on a micro model."""
import json

import open_clip
import pytest
import torch

from assert_lib import assert_misspelled_key_exits_2
from train.probe import features as FT
from train.probe.tasks import vsr

MICRO = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8,
                        "head_width": 16},
         "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "probe-test-micro.json"
    path.write_text(json.dumps(MICRO))
    open_clip.add_model_config(path)
    torch.set_num_threads(1)
    return FT.load_backbone("probe-test-micro", None, seed=0)


def test_hooked_last_block_reproduces_encode_image(micro):
    model, _, _ = micro
    assert FT.parse_layers("all", model) == [1, 2, "final"]
    assert FT.parse_layers(-1, model) == [2]
    with pytest.raises(ValueError, match="resblocks 1..2"):
        FT.parse_layers(3, model)
    px = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        feats = FT.image_features(model, px, [1, 2, "final"], pooling="flatten")
        tokens = feats[2].view(3, 17, 32)  # 16 patches + class token, width 32
        v = model.visual
        # what open_clip does after the last block: ln_post, class token, projection
        assert torch.allclose(v.ln_post(tokens)[:, 0] @ v.proj, feats["final"], atol=1e-5)
        # stopping after block 1 gives the same block-1 features as the full pass
        assert torch.allclose(FT.image_features(model, px, [1])[1], feats[1])
    assert FT.pool(tokens, "cls").shape == (3, 32) and FT.pool(tokens, "mean").shape == (3, 32)


def test_joint_features_carry_gradients(micro):
    model, _, _ = micro
    out = FT.image_features(model, torch.randn(2, 3, 32, 32), [1])[1]
    out.sum().backward()
    assert model.visual.conv1.weight.grad is not None
    assert model.visual.transformer.resblocks[1].mlp.c_fc.weight.grad is None  # never ran
    model.zero_grad(set_to_none=True)


def test_vsr_loader(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    rows = [{"image": "a.jpg", "caption": "the cat is on the mat", "label": 1, "relation": "on",
             "subj": "cat", "obj": "mat"},
            {"image": "missing.jpg", "caption": "c", "label": 0, "relation": "under"}]
    f = tmp_path / "train.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    split, missing = vsr.load_split(f)
    assert missing == 1 and split.keys == ["cat|on|mat"] and split.targets.tolist() == [1.0]
    f.write_text(json.dumps({"image": "a.jpg", "caption": "c", "label": 1}))
    with pytest.raises(ValueError, match=r"train.jsonl:1: missing VSR key 'relation'"):
        vsr.load_split(f)


@pytest.mark.slow
def test_probe_command_end_to_end(micro, tmp_path):
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from train.probe.main import probe
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose("probe", overrides=[
            "model.name=probe-test-micro", f"out_dir={tmp_path}/run", f"data.generated.dir={tmp_path}/data",
            "data.generated.size=48", "data.generated.train=100", "data.generated.val=80",
            "data.generated.test=80", "search.max_epochs=2", "search.max_epochs_unfrozen=1",
            "search.lrs_frozen=[1e-3]",
            "search.lrs_unfrozen=[1e-4]", "heads=[linear,mlp2]"])
    doc = probe(cfg)
    got = {(r["task"], r["mode"], r["head"], r["layer"]) for r in doc["results"]}
    for t in ("rcm", "boxes", "vsr"):
        assert {(t, "frozen", "linear", "final"), (t, "frozen", "mlp2", "final"),
                (t, "frozen", "linear", "1"),
                (t, "unfrozen", "linear", "final"), (t, "chance", "-", "-")} <= got
    assert all(0.0 <= r["test"] <= 1.0 for r in doc["results"])
    text = (tmp_path / "run" / "report.md").read_text()
    assert "Table 1 shape" in text and "Kendall" in text and (tmp_path / "run" / "probe_layers.png").is_file()


@pytest.mark.parametrize("argv, named, nearest", [
    (["features.layr=3"], "features.layr", "features.layer"),  # no '+': Hydra would exit 1
    (["+seeed=1"], "seeed", "seed"),                            # '+': a key nothing would read
    (["-m", "seeed=1,2"], "seeed", "seed"),
])
def test_probe_misspelled_key_exits_2_naming_the_nearest(tmp_path, argv, named, nearest):
    assert_misspelled_key_exits_2(["-m", "train.probe.main", *argv, f"out_dir={tmp_path}/run"],
                                  "hnclip-probe", named, nearest, tmp_path / "run")


def test_probe_key_check_passes_the_config_keys():
    from train.probe.main import check_command_line
    check_command_line(["features.layer=3", "tasks.0=vsr", "data.vsr.train=x", "hydra.run.dir=y",
                        "model.name=ViT-B-32", "--cfg", "job"])
