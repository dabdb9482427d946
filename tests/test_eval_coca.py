"""An open_clip CoCa model (the tiny hnclip-tiny-coca config, random weights) scored through the
evaluator contract as a dual encoder, the way open_clip builds it (SPEC's Table 2 diagnoses
CoCa beside CLIP). A random model has no right answers of its own, so the oracle is built from
it: a SPEC-format benchmark labelled with the candidate the model ranks first (each caption
encoded alone, straight with open_clip) scores 100; labelled with its last, 0."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from train.eval import build_one
from train.eval.contract import run_suite
from train.eval.load import load


@pytest.fixture(scope="module")
def coca():
    torch.manual_seed(0)
    model, preprocess, tokenizer, desc = load(model="hnclip-tiny-coca")
    assert type(model).__name__ == "CoCa" and desc == "hnclip-tiny-coca:random-init"
    return model, preprocess, tokenizer


def direct(model, preprocess, tokenizer, image, captions):
    with torch.no_grad():
        img = model.encode_image(preprocess(image)[None], normalize=True)[0]
        return [float(model.encode_text(tokenizer([c]), normalize=True)[0] @ img) for c in captions]


def write_spec(root, model, preprocess, tokenizer, pick):
    rng = np.random.default_rng(3)
    sub = root / "count"
    (sub / "images").mkdir(parents=True, exist_ok=True)
    i2t, t2i = [], []
    for q in range(5):
        caps = [f"a photo of {w} cups on table {q}" for w in ("one", "two", "three", "four")]
        rels = []
        for j in range(4):
            rel = f"images/{q}_{j}.png"
            Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(sub / rel)
            rels.append(rel)
        s = direct(model, preprocess, tokenizer, Image.open(sub / rels[0]).convert("RGB"), caps)
        assert len(set(s)) == 4  # the random model separates the candidates
        i2t.append({"query": rels[0], "keys": caps, "label": int(pick(s))})
        # text -> image: the caption against its four images, scored one image at a time
        with torch.no_grad():
            t = model.encode_text(tokenizer([caps[0]]), normalize=True)[0]
            si = [float(model.encode_image(preprocess(Image.open(sub / r).convert("RGB"))[None],
                                           normalize=True)[0] @ t) for r in rels]
        t2i.append({"query": caps[0], "keys": rels, "label": int(pick(si))})
    (sub / "image2text.json").write_text(json.dumps(i2t))
    (sub / "text2image.json").write_text(json.dumps(t2i))
    return str(root)


@pytest.mark.parametrize("pick,expected", [(np.argmax, 100.0), (np.argmin, 0.0)])
def test_coca_scores_its_own_answers(tmp_path, coca, pick, expected):
    model, preprocess, tokenizer = coca
    root = write_spec(tmp_path / "spec", model, preprocess, tokenizer, pick)
    ev = build_one("spec", {"root": root, "subsets": ["count"], "classes": None}, batch_size=3)
    res = run_suite(ev, model, tokenizer, preprocess)
    assert res.metrics["count/i2t"] == expected and res.metrics["count/t2i"] == expected
    assert not model.training  # run_suite leaves the mode as it found it (eval here)
