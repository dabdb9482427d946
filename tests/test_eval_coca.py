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


def test_captioning_score_is_minus_cocas_own_caption_loss(tmp_path):
    """coca-caption: s(image, caption) equals minus the cross-entropy of open_clip's own CoCa
    forward for that pair (padding ignored, as CoCaLoss); through the evaluators, a benchmark
    labelled with its own first choices scores 100, with its last 0; gallery benchmarks refuse it."""
    torch.manual_seed(0)
    scorer, preprocess, tokenizer, desc = load(model="coca-caption:hnclip-tiny-coca")
    assert desc == "coca-caption:hnclip-tiny-coca:random-init"
    coca = scorer.model
    rng = np.random.default_rng(5)

    def own(image, captions):
        out = []
        with torch.no_grad():
            for c in captions:
                o = coca(preprocess(image)[None], tokenizer([c]))
                ce = torch.nn.functional.cross_entropy(o["logits"].permute(0, 2, 1), o["labels"],
                                                       ignore_index=0)
                out.append(-float(ce))
        return out

    img = Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
    caps = ["two cups on a table", "a cup under a table", "three dogs"]
    with torch.no_grad():
        ours = scorer.match(scorer.encode_image(preprocess(img)[None]).expand(3, -1, -1),
                            scorer.encode_text(tokenizer(caps)))
    assert ours.tolist() == pytest.approx(own(img, caps), abs=1e-5)
    for pick, expected in ((np.argmax, 100.0), (np.argmin, 0.0)):
        sub = tmp_path / pick.__name__ / "count"
        (sub / "images").mkdir(parents=True)
        i2t = []
        for q in range(4):
            keys = [f"set {q} has {w} cups" for w in ("one", "two", "three")]
            pixels = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(sub / "images" / f"{q}.png")
            s = own(Image.open(sub / "images" / f"{q}.png").convert("RGB"), keys)
            assert len(set(s)) == 3
            i2t.append({"query": f"images/{q}.png", "keys": keys, "label": int(pick(s))})
        (sub / "image2text.json").write_text(json.dumps(i2t))
        (sub / "text2image.json").write_text(json.dumps([]))
        res = run_suite(build_one("spec", {"root": str(sub.parent)}, batch_size=3), scorer, tokenizer,
                        preprocess)
        assert res.metrics["count/i2t"] == expected
    folder = tmp_path / "zs" / "cup"
    folder.mkdir(parents=True)
    img.save(folder / "0.png")
    with pytest.raises(ValueError, match="cross-encoder"):
        run_suite(build_one("zeroshot", {"root": str(tmp_path / "zs"), "templates": ["a {}."]}), scorer,
                  tokenizer, preprocess)
