"""Diagnostics with known answers, bad input with clear errors, and the batching property the
loss relies on: a candidate set is never split across steps (train/data/set_batcher.py)."""
import math
from collections import Counter

import numpy as np
import pytest
import torch

from dist_losses_lib import flatten, random_sets
from train.data.set_batcher import collate_sets, pack_sets
from train.losses import NonFiniteFeatures, SetIndex, check_set_index, clip_loss, hn_loss, set_diagnostics


def _unit(deg):
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_diagnostics_known_answers():
    # set 0: captions at 0, 90, 180 degrees (the last text-only); image 0 at 0 deg -> caption 0
    # (right, margin 1 - 0), image 1 at 10 deg -> caption 1 (wrong: cos 80 < cos 10).
    # set 1: captions at 90 and 0 deg, one image at 90 deg -> caption 0 (right, margin 1); its
    # T2I query has no in-set negative and is left out. Set 1's captions would tie with set 0's
    # if other sets leaked into the in-set diagnostics.
    txt_emb = torch.tensor([_unit(0), _unit(90), _unit(180), _unit(90), _unit(0)], dtype=torch.float64)
    img_emb = torch.tensor([_unit(0), _unit(10), _unit(90)], dtype=torch.float64)
    idx = SetIndex(img_set=torch.tensor([0, 0, 1]), img_cap=torch.tensor([0, 1, 3]),
                   img_key=torch.tensor([0, 1, 2]),
                   cap_set=torch.tensor([0, 0, 0, 1, 1]), cap_img=torch.tensor([0, 1, -1, 2, -1]),
                   cap_key=torch.tensor([0, 1, 2, 3, 4]))
    check_set_index(idx)
    d = set_diagnostics(img_emb, txt_emb, txt_emb, img_emb, idx)
    c = lambda deg: math.cos(math.radians(deg))
    assert d["hn/acc_i2t"] == pytest.approx(2 / 3)
    assert d["hn/margin_i2t"] == pytest.approx(((1 - 0) + (c(80) - c(10)) + (1 - 0)) / 3)
    # T2I: caption 0 -> image 0 (cos 1) vs image 1 (cos 10): right; caption 1 -> image 1
    # (cos 80) vs image 0 (cos 90): right
    assert d["hn/acc_t2i"] == pytest.approx(1.0)
    assert d["hn/margin_t2i"] == pytest.approx(((1 - c(10)) + (c(80) - c(90))) / 2)


def _index(**over):
    base = dict(img_set=[0, 0, 1], img_cap=[0, 1, 3], img_key=[0, 1, 2], cap_set=[0, 0, 0, 1, 1],
                cap_img=[0, 1, -1, 2, -1], cap_key=[0, 1, 2, 3, 4])
    base.update(over)
    return SetIndex(**{k: torch.tensor(v) for k, v in base.items()})


@pytest.mark.parametrize("over,message", [
    (dict(cap_set=[0, 0, 0, 1, 2]), "candidate set 1 has 1 caption(s); a set needs at least 2"),
    (dict(img_cap=[0, 4, 3], cap_img=[0, -1, -1, 2, 1]), "image 1's caption index 4 lies outside its set"),
    (dict(img_cap=[0, 7, 3]), "names caption 7, outside the 5 captions"),
    (dict(cap_img=[0, 0, -1, 2, -1]), "links disagree"),
    (dict(img_cap=[0, 0, 3], cap_img=[0, -1, -1, 2, -1]), "links disagree"),
    (dict(cap_img=[0, 1, 9, 2, -1]), "image index lies outside the images"),
])
def test_bad_set_index_is_named(over, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_set_index(_index(**over))


def test_good_index_passes_and_text_only_sets_are_allowed():
    check_set_index(_index())
    check_set_index(_index(img_set=[0, 0], img_cap=[0, 1], img_key=[0, 1], cap_img=[0, 1, -1, -1, -1]))


def test_non_finite_features_are_named():
    gen = torch.Generator().manual_seed(0)
    sets, img_emb, txt_emb = random_sets(gen, n_sets=3, dim=4)
    idx, ir, cr = flatten(sets)
    i, t = img_emb[ir].clone(), txt_emb[cr].clone()
    t[2, 1] = float("inf")
    with pytest.raises(NonFiniteFeatures,
                       match=r"non-finite set_text_features .* 1 of 17 rows .*first row 2"):
        hn_loss(i, t, i, t, 5.0, idx)
    i[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite image_features"):
        clip_loss(i, i, i, i, 5.0)


def test_unknown_pool_and_missing_pair_keys():
    gen = torch.Generator().manual_seed(0)
    sets, img_emb, txt_emb = random_sets(gen, n_sets=2, dim=4)
    idx, ir, cr = flatten(sets)
    with pytest.raises(ValueError, match="unknown negative pool 'global'"):
        hn_loss(img_emb[ir], txt_emb[cr], img_emb[ir], txt_emb[cr], 5.0, idx, pool="global")
    with pytest.raises(ValueError, match="needs the pair stream"):
        hn_loss(img_emb[ir], txt_emb[cr], img_emb[ir], txt_emb[cr], 5.0, idx, pool="step+pairs")


def _stream(n, seed):
    """Synthetic decoded sets (the dicts decode_set yields), each tagged with an id."""
    rng = np.random.default_rng(seed)
    for sid in range(n):
        k = int(rng.integers(2, 10))
        n_img = int(rng.integers(1, k + 1))
        with_img = sorted(rng.choice(k, n_img, replace=False).tolist())
        yield {"sid": sid, "images": [torch.full((2,), float(sid * 100 + j)) for j in range(n_img)],
               "captions": [f"set {sid} caption {c}" for c in range(k)], "image_caption": with_img,
               "img_keys": [sid * 100 + j for j in range(n_img)],
               "cap_keys": [sid * 100 + c for c in range(k)],
               "subset": "count"}


@pytest.mark.parametrize("n_items,lookahead", [(12, 16), (5, 4), (8, 8), (24, 32)])
def test_a_set_is_never_split_across_steps(n_items, lookahead):
    originals = {s["sid"]: s for s in _stream(300, seed=n_items + lookahead)}
    counters = Counter()
    steps = list(pack_sets(_stream(300, seed=n_items + lookahead), n_items, lookahead,
                           np.random.default_rng(0), counters))
    assert len(steps) > 10
    seen = Counter()
    for step in steps:
        assert sum(len(s["images"]) for s in step) == n_items
        for s in step:
            seen[s["sid"]] += 1
            o = originals[s["sid"]]
            # all captions stay; images are a subset (trimmed sets keep theirs as text-only)
            assert s["captions"] == o["captions"] and s["cap_keys"] == o["cap_keys"]
            orig_pairs = {(k, c) for k, c in zip(o["img_keys"], o["image_caption"])}
            assert {(k, c) for k, c in zip(s["img_keys"], s["image_caption"])} <= orig_pairs
        batch = collate_sets(step, tokenizer=lambda caps: torch.zeros(len(caps), 3, dtype=torch.long))
        fields = ("img_set", "img_cap", "img_key", "cap_set", "cap_img", "cap_key")
        idx = SetIndex(*(batch[k] for k in fields))
        check_set_index(idx)             # the collated step is a valid loss input
        # every collated set is exactly one source set: its caption keys all come from it
        for sid in idx.cap_set.unique().tolist():
            owners = {k // 100 for k in idx.cap_key[idx.cap_set == sid].tolist()}
            assert len(owners) == 1
    assert max(seen.values()) == 1       # no set appears in two steps
    if n_items < 9:
        assert counters["sets_trimmed"] > 0   # the trimming path was exercised
