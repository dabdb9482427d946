"""Regression tests for defects found by running the evaluators on the released benchmark
files beside each benchmark's own scoring code. Each fails on the code before the fix."""
import json
import os

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import eval_fixtures as fx
from eval_toy import ToyEncoder, World
from train.eval import build_one
from train.eval.contract import run_suite

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def run(ev, enc):
    return run_suite(ev, enc, enc.tokenizer, enc.preprocess)


class BatchNoise(torch.nn.Module):
    """A real (tiny, random) open_clip model whose text features depend, by ~1e-6, on the row's
    position in the batch: what GPU kernels do, made deterministic. Identical token rows must
    still score identically, whatever batch they were encoded in."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        noise = torch.randn(model.text_projection.shape[1], generator=torch.Generator().manual_seed(1))
        self.direction = torch.nn.functional.normalize(noise, dim=0)

    def encode_image(self, x, normalize=True):
        return self.model.encode_image(x, normalize=normalize)

    def encode_text(self, tokens, normalize=True):
        e = self.model.encode_text(tokens, normalize=True)
        e = e + 1e-6 * torch.arange(len(e), dtype=e.dtype)[:, None] * self.direction
        return torch.nn.functional.normalize(e, dim=-1)


@pytest.fixture(scope="module")
def tiny():
    from train import models
    torch.manual_seed(0)
    model, _, preprocess, tokenizer = models.create("hnclip-tiny")
    return model.eval(), preprocess, tokenizer


def test_captions_identical_after_truncation_tie_exactly_whatever_the_batching(tmp_path, tiny):
    model, preprocess, tokenizer = tiny
    ctx = tokenizer.context_length
    stem = " ".join(["the red cup is on the left of the blue box"] * ctx)  # far past the context length
    caption, foil = stem + " and it is sunny", stem + " and it is raining"
    assert torch.equal(tokenizer([caption]), tokenizer([foil]))  # the model cannot tell them apart
    # VALSE's format (coreference-hard is where the official loop and ours parted)
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "img.png")
    data = {"coref_0": {"dataset": "visdial", "image_file": "img.png", "caption": caption, "foil": foil,
                        "mturk": {"foil": 0, "caption": 3, "other": 0}}}
    (tmp_path / "coreference-hard.json").write_text(json.dumps(data))
    opts = {"files": {"coreference-hard": str(tmp_path / "coreference-hard.json")},
            "image_root": str(tmp_path)}
    noisy = BatchNoise(model)
    for batch_size in (1, 256):
        ev = build_one("valse", opts, batch_size=batch_size, examples=1)
        res = run_suite(ev, noisy, tokenizer, preprocess)
        s_caption, s_foil = res.examples[0]["scores"][0]
        assert s_caption == s_foil, f"batch_size={batch_size}: a tie decided by float noise"
        assert res.metrics["coreference-hard/acc"] == 0.0  # strict: a tie is wrong, as VALSE's loop
    first = run_suite(build_one("valse", {**opts, "tie_rule": "first"}), noisy, tokenizer, preprocess)
    assert first.metrics["coreference-hard/acc"] == 100.0  # the caption is listed first


def sugarcrepe_world(world, root, names=("add_att", "swap_att")):
    """Toy images under the file names the released excerpt names; each carries every caption
    (not the negatives) the files give it."""
    caps = {}
    for n in names:
        for rec in json.load(open(os.path.join(FIXTURES, "sugarcrepe", f"{n}.json"))).values():
            caps.setdefault(rec["filename"], []).append(rec["caption"])
    for fname, cs in caps.items():
        world.image(cs).save(root / fname.replace(".jpg", ".png"))
        os.replace(root / fname.replace(".jpg", ".png"), root / fname)  # PNG bytes: exact colours


def test_limit_takes_the_first_items_of_every_subtask(tmp_path):
    world = World()
    sugarcrepe_world(world, tmp_path)
    ev = build_one("sugarcrepe", {"root": os.path.join(FIXTURES, "sugarcrepe"), "image_root": str(tmp_path),
                                  "limit": 2})
    res = run(ev, ToyEncoder(world))
    assert {"add_att/acc", "swap_att/acc", "avg/acc"} <= set(res.metrics)  # not add_att alone
    assert res.counts["add_att/items"] == 2 and res.counts["swap_att/items"] == 2
    # VALSE: the first N valid items of every piece
    v = fx.write_valse(World(), tmp_path / "valse", per_piece=3)
    vres = build_one("valse", {"files": v["files"], "image_root": v["image_root"], "limit": 2})
    assert [it.group for it in vres.items] == ["existence"] * 2 + ["counting-hard"] * 2


def independent_recall(model, preprocess, tokenizer, ann, image_root, k):
    """Plain loops over the released JSON: every caption a query, an image a hit if any of its
    captions is in the top k."""
    data = json.load(open(ann))["images"]
    data = [im for im in data if im["split"] == "test"]
    with torch.no_grad():
        paths = [os.path.join(image_root, im["filepath"], im["filename"]) for im in data]
        img = torch.cat([model.encode_image(preprocess(Image.open(p).convert("RGB"))[None], normalize=True)
                         for p in paths])
        caps = [(n, s["raw"]) for n, im in enumerate(data) for s in im["sentences"]]
        T = torch.cat([model.encode_text(tokenizer([c]), normalize=True) for _, c in caps])
    S = (img @ T.T).numpy()
    i2t = np.mean([any(caps[j][0] == n for j in np.argsort(-S[n], kind="stable")[:k])
                   for n in range(len(data))])
    t2i = np.mean([n in np.argsort(-S[:, j], kind="stable")[:k] for j, (n, _) in enumerate(caps)])
    return 100 * i2t, 100 * t2i


@pytest.mark.parametrize("fmt", ["dataset", "list"])
def test_retrieval_reads_the_karpathy_split_with_five_captions_per_image(tmp_path, fmt):
    world = World()
    opts = fx.write_karpathy(world, tmp_path, n_images=12, fmt=fmt)  # > 10: R@10 can fail
    ev = build_one("retrieval", opts)
    assert len(ev.images) == 12 and all(len(c) == 5 for _, c in ev.images)  # val/train images left out
    for mode, expected in (("oracle", 100.0), ("reversed", 0.0)):
        res = run(ev, ToyEncoder(world, mode))
        assert all(v == expected for v in res.metrics.values()), (mode, res.metrics)
    assert res.counts["captions"] == 60


def test_retrieval_equals_an_independent_computation(tmp_path, tiny):
    model, preprocess, tokenizer = tiny
    opts = fx.write_karpathy(World(), tmp_path, n_images=6)
    res = run_suite(build_one("retrieval", opts, batch_size=4), model, tokenizer, preprocess)
    for k in (1, 5):
        i2t, t2i = independent_recall(model, preprocess, tokenizer, opts["ann"], opts["image_root"], k)
        assert res.metrics[f"i2t/R@{k}"] == pytest.approx(i2t, abs=1e-9)
        assert res.metrics[f"t2i/R@{k}"] == pytest.approx(t2i, abs=1e-9)


def test_tie_rule_first_is_specs_argmax_and_is_reported(tmp_path):
    world = World()
    spec = fx.write_spec(world, tmp_path / "spec", subsets=(("count", 4),), sets=2)
    enc = ToyEncoder(world, "constant")  # every score equal: only the tie rule decides
    strict = run(build_one("spec", {"root": spec["root"]}), enc)
    first = run(build_one("spec", {"root": spec["root"], "tie_rule": "first"}), enc)
    assert strict.tie_rule == "strict" and first.tie_rule == "first"
    assert strict.metrics["count/i2t"] == 0.0
    # SPEC's eval.py: np.argmax over the scores, so the query whose label is 0 wins
    labels = [it["label"] for it in json.load(open(tmp_path / "spec" / "count" / "image2text.json"))]
    argmax_right = np.mean([np.argmax(np.zeros(4)) == label for label in labels])
    assert first.metrics["count/i2t"] == 100.0 * argmax_right == 25.0
    # ARO's code takes argmax over [false, true]: a tie is wrong under either rule
    aro = fx.write_aro(world, tmp_path / "aro", "relation", big=3, small=0)
    aro_first = run(build_one("aro_relation", {"ann": aro["ann"], "image_root": aro["image_root"],
                                               "tie_rule": "first"}), enc)
    assert aro_first.metrics["micro/acc"] == 0.0
    with pytest.raises(ValueError, match="tie_rule"):
        build_one("spec", {"root": spec["root"], "tie_rule": "random"})


def test_evaluate_command_reports_the_tie_rule(tmp_path, tiny):
    from train import models
    from train.eval import evaluate as cmd
    world = World()
    wino = fx.write_winoground(world, tmp_path / "wino", n=2)
    conf = tmp_path / "eval.yaml"
    conf.write_text(yaml.safe_dump({"benchmarks": ["winoground"], "suites": {"winoground": wino}}))
    models.export_for_open_clip(tiny[0], "hnclip-tiny", tmp_path / "export")
    cmd.main([f"checkpoint={tmp_path / 'export'}", f"eval={conf}", "tie_rule=first"])
    saved = json.loads((tmp_path / "export" / "eval" / "results.json").read_text())
    assert saved["tie_rule"] == {"winoground": "first"}
    assert "ties: first" in (tmp_path / "export" / "eval" / "results.md").read_text()


def fake_run(tmp_path, state):
    """A run directory as the trainer leaves it: config.yaml + checkpoints/step-N/trainer.pt."""
    run = tmp_path / "run"
    step = run / "checkpoints" / "step-0000001"
    step.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 0,
                                                     "model": {"name": "hnclip-tiny", "pretrained": None}}))
    torch.save(state, step / "trainer.pt")
    return step / "trainer.pt"


def test_evaluate_a_trainer_checkpoint_file_writes_beside_it(tmp_path, tiny):
    from train.eval import evaluate as cmd
    trainer_pt = fake_run(tmp_path, {"step": 1, "model": tiny[0].state_dict(), "optimizer": {"state": {}}})
    world = World()
    conf = tmp_path / "eval.yaml"
    conf.write_text(yaml.safe_dump({"benchmarks": ["winoground"],
                                    "suites": {"winoground": fx.write_winoground(world, tmp_path / "w",
                                                                                 n=2)}}))
    results = cmd.main([f"checkpoint={trainer_pt}", f"eval={conf}"])
    out = trainer_pt.parent / "eval" / "results.json"
    assert out.is_file() and json.loads(out.read_text())["results"] == results


class RunsCode:
    """Unpickling this runs os.mkdir: what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_a_checkpoint_that_runs_code_is_refused_not_executed(tmp_path):
    from train.eval.load import load
    marker = tmp_path / "pwned"
    trainer_pt = fake_run(tmp_path, {"step": 1, "model": RunsCode(str(marker))})
    with pytest.raises(ValueError, match="refused"):
        load(str(trainer_pt))
    assert not marker.exists()


@pytest.mark.parametrize("bad", ["../outside.jpg", "/etc/hostname", "sub/../../outside.jpg"])
def test_image_paths_leaving_the_root_are_refused(tmp_path, bad):
    (tmp_path / "data").mkdir()
    rec = {"0": {"filename": bad, "caption": "a", "negative_caption": "b"}}
    (tmp_path / "data" / "add_att.json").write_text(json.dumps(rec))
    opts = {"root": str(tmp_path / "data"), "image_root": str(tmp_path / "images")}
    with pytest.raises(ValueError, match=r"add_att\.json item 0.*leaves the image root"):
        build_one("sugarcrepe", opts)
    ev = build_one("sugarcrepe", {**opts, "allow_outside_root": True})  # a file the user trusts
    assert ev.items[0].image.endswith(bad.split("/")[-1])
