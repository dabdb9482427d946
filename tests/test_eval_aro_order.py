"""ARO's COCO-Order / Flickr30k-Order from Karpathy captions: the four perturbations keep what
ARO's definitions keep, the normalisation is ARO's, and the scores are known on toy encoders
and equal plain loops on a tiny open_clip model."""
import json
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from eval_toy import ToyEncoder, World
from train.eval import aro_order, build_one
from train.eval.contract import run_suite

NOUNS = {"man", "dog", "frisbee", "park", "woman", "umbrella", "street", "cat", "sofa", "window"}
ADJS = {"young", "red", "green", "wet", "small", "white", "old"}


def lexicon_tagger():
    """A fixed word list in place of spaCy's tagger (not installed here): Penn tags for a test."""
    return lambda text: [(w, "NN" if w.lower() in NOUNS else "JJ" if w.lower() in ADJS else "XX")
                         for w in aro_order.word_tokens(text)]


@pytest.fixture(autouse=True)
def test_tagger(monkeypatch):
    monkeypatch.setitem(aro_order.TAGGERS, "lexicon", lexicon_tagger)


CAPTIONS = [["A young man throws a red frisbee to the dog in the green park.",
             "The wet dog catches a frisbee thrown by a young man."],
            ["An old woman holds a white umbrella on the wet street.",
             "A small cat sleeps on the old sofa by the window."]]


def write_order(world, root, images=CAPTIONS):
    """coco_karpathy_test.json as ARO downloads it; each image carries its normalised captions."""
    recs = []
    for i, caps in enumerate(images):
        name = f"val2014/COCO_val2014_{i:012d}.png"
        (root / "val2014").mkdir(parents=True, exist_ok=True)
        world.image([aro_order.normalise(c) for c in caps]).save(root / name)
        recs.append({"image": name, "caption": caps, "image_id": f"coco_{i}"})
    (root / "coco_karpathy_test.json").write_text(json.dumps(recs))
    return {"ann": str(root / "coco_karpathy_test.json"), "image_root": str(root), "tagger": "lexicon"}


def test_normalise_is_aros_pre_caption():
    assert aro_order.normalise('A "Big" dog (brown); runs!  Fast.') == "a big dog brown runs fast"
    assert len(aro_order.normalise(" ".join(["w"] * 40)).split()) == 30


def test_each_perturbation_keeps_what_its_definition_keeps():
    cap = CAPTIONS[0][0]
    tok = aro_order.word_tokens(cap)
    tags = lexicon_tagger()(cap)
    rng = np.random.default_rng(3)
    out = {p: aro_order.perturb(cap, p, rng, lexicon_tagger()).split() for p in aro_order.PERTURBATIONS}
    kept = lambda words, ok: [w for w, (_, t) in zip(words, tags) if not ok(t)]
    # nouns_adj: everything but nouns and adjectives stays in place; nouns stay on noun slots
    assert kept(out["nouns_adj"], lambda t: t in ("NN", "JJ")) == kept(tok, lambda t: t in ("NN", "JJ"))
    assert Counter(w for w, (_, t) in zip(out["nouns_adj"], tags) if t == "NN") == \
        Counter(w for w, t in tags if t == "NN")
    # allbut_nouns_adj: nouns and adjectives stay in place
    assert [w for w, (_, t) in zip(out["allbut_nouns_adj"], tags) if t in ("NN", "JJ")] == \
        [w for w, t in tags if t in ("NN", "JJ")]
    # trigrams: the same trigrams, reordered; within_trigrams: each trigram's words, reordered
    tri = [tuple(g) for g in aro_order.trigrams(tok)]
    assert Counter(tuple(g) for g in aro_order.trigrams(out["trigrams"])) == Counter(tri)
    assert [Counter(g) for g in aro_order.trigrams(out["within_trigrams"])] == [Counter(g) for g in tri]
    assert all(Counter(o) == Counter(tok) for o in out.values()) and out["trigrams"] != tok


def test_oracle_reversed_and_constant(tmp_path):
    world = World()
    ev = build_one("aro_order", write_order(world, tmp_path))
    assert len(ev.items) == 4 and all(len(it.wrong) == 4 for it in ev.items)
    unchanged = sum(it.right in it.wrong for it in ev.items)
    oracle = run_suite(ev, ToyEncoder(world), ToyEncoder(world).tokenizer, ToyEncoder(world).preprocess)
    assert oracle.metrics["acc"] == 100.0 * (4 - unchanged) / 4
    assert oracle.counts["unchanged_by_a_perturbation"] == unchanged
    for mode in ("reversed", "constant"):
        enc = ToyEncoder(world, mode)
        assert all(v == 0.0 for v in run_suite(ev, enc, enc.tokenizer, enc.preprocess).metrics.values())
    # ARO's own argmax (original listed first): under `first` a constant model is always right
    first = build_one("aro_order", {**write_order(world, tmp_path), "tie_rule": "first"})
    enc = ToyEncoder(world, "constant")
    assert run_suite(first, enc, enc.tokenizer, enc.preprocess).metrics["acc"] == 100.0


def test_seeded_perturbations_are_reproducible_and_seed_dependent(tmp_path):
    opts = write_order(World(), tmp_path)
    a, b, c = (build_one("aro_order", {**opts, "seed": s}) for s in (0, 0, 1))
    assert [it.wrong for it in a.items] == [it.wrong for it in b.items] != [it.wrong for it in c.items]


def test_no_tagger_is_a_clear_error_and_trigrams_alone_need_none(tmp_path, monkeypatch):
    opts = write_order(World(), tmp_path)
    monkeypatch.setitem(aro_order.TAGGERS, "spacy", lambda: (_ for _ in ()).throw(ValueError("needs spaCy")))
    with pytest.raises(ValueError, match="spaCy"):
        build_one("aro_order", {**opts, "tagger": "spacy"})
    ev = build_one("aro_order", {**opts, "tagger": "spacy", "perturbations": ["within_trigrams", "trigrams"]})
    assert all(len(it.wrong) == 2 for it in ev.items)


def test_matches_plain_loops_on_a_tiny_open_clip(tmp_path):
    from train import models
    torch.manual_seed(0)
    model, _, preprocess, tokenizer = models.create("hnclip-tiny")
    model.eval()
    opts = write_order(World(), tmp_path)
    rng = np.random.default_rng(0)
    for rec in json.load(open(opts["ann"])):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(tmp_path / rec["image"])
    ev = build_one("aro_order", opts, batch_size=3)
    ours = run_suite(ev, model, tokenizer, preprocess)
    hits = []
    with torch.no_grad():
        for it in ev.items:
            img = model.encode_image(preprocess(Image.open(it.image).convert("RGB"))[None], normalize=True)[0]
            s = [float(model.encode_text(tokenizer([c]), normalize=True)[0] @ img)
                 for c in [it.right, *it.wrong]]
            hits.append(all(s[0] > x for x in s[1:]))
    assert ours.metrics["acc"] == pytest.approx(100 * np.mean(hits))
