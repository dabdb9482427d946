"""The candidate-set stream and batcher: exactly N images per step, whole sets only (a set
is never split across steps), the documented trimming policy, and correct index links."""
from collections import Counter

import numpy as np
import pytest
import torch

from data_lib import identity_tokenizer, set_color, set_shards, tensor
from train.data.set_batcher import pack_sets, plan_steps
from train.data.steps import StepSpec, StreamSpec, make_loader


def fake_sets(sizes):
    return [{"images": [(n, k) for k in range(s)], "captions": [f"set{n} cap{k}" for k in range(s)],
             "image_caption": list(range(s)), "img_keys": list(range(s)), "cap_keys": list(range(s)),
             "subset": "x", "n": n} for n, s in enumerate(sizes)]


@pytest.mark.parametrize("n_items", [2, 7, 24])
def test_every_step_has_exactly_n_items_and_sets_are_never_split(n_items):
    rng = np.random.default_rng(0)
    sizes = rng.integers(2, 10, 500).tolist()
    counters = Counter()
    steps = list(pack_sets(fake_sets(sizes), n_items, 8, np.random.default_rng(1), counters))
    assert len(steps) > 10
    where, trimmed = {}, 0
    for i, step in enumerate(steps):
        assert sum(len(s["images"]) for s in step) == n_items
        for s in step:
            assert s["n"] not in where, f"set {s['n']} in steps {where[s['n']]} and {i}"
            where[s["n"]] = i
            full = sizes[s["n"]]
            # a trimmed set keeps all its captions and a subset of its own images
            assert len(s["captions"]) == full
            assert all(img[0] == s["n"] for img in s["images"])
            want = [f"set{n} cap{k}" for n, k in s["images"]]
            assert [s["captions"][c] for c in s["image_caption"]] == want
            trimmed += len(s["images"]) < full
    assert counters["sets_trimmed"] == trimmed
    # at most one trimmed set per step: the one that closes it
    assert all(sum(len(s["images"]) < sizes[s["n"]] for s in step) <= 1 for step in steps)


def test_trimming_policy_when_sets_do_not_tile():
    # size-3 sets into 6 items tile exactly: no trimming
    c = Counter()
    steps = list(pack_sets(fake_sets([3] * 20), 6, 4, np.random.default_rng(0), c))
    assert len(steps) == 10 and c["sets_trimmed"] == 0
    # into 4 items they cannot: each step is one whole set plus one set trimmed to 1 image,
    # whose other 2 images are dropped (never carried into the next step)
    c = Counter()
    steps = list(pack_sets(fake_sets([3] * 20), 4, 4, np.random.default_rng(0), c))
    assert [sorted(len(s["images"]) for s in st) for st in steps] == [[1, 3]] * 10
    assert c["sets_trimmed"] == 10
    # the look-ahead avoids trimming when a later set fits: 5+3 into 8, with a 5 first in line
    c = Counter()
    steps = list(pack_sets(fake_sets([5, 5, 3, 3]), 8, 4, np.random.default_rng(0), c))
    assert [[s["n"] for s in st] for st in steps] == [[0, 2], [1, 3]] and c["sets_trimmed"] == 0


def test_plan_steps_needs_only_sizes():
    c = Counter()
    plans = list(plan_steps(["a", "bb", "ccc", "dddd"], 5, 4, np.random.default_rng(0), c, size=len))
    # arrival order: a and bb fit whole; nothing fits the last 2, so ccc (the oldest) is trimmed
    # to 2 images; dddd alone cannot fill a step and the stream ends: the partial step is dropped
    assert len(plans) == 1 and [x for x, _ in plans[0]] == ["a", "bb", "ccc"]
    assert plans[0][0][1] is None and plans[0][1][1] is None and len(plans[0][2][1]) == 2
    assert c["sets_trimmed"] == 1


def test_set_stream_end_to_end_links_images_to_their_captions(tmp_path):
    sizes = [2, 3, 4, 9, 5, 3, 2, 7, 3, 4, 6, 2, 8, 3, 5, 4, 9, 9, 2]
    urls = set_shards(tmp_path, sizes, n_shards=2, n_captions_extra=1)
    from data_lib import pair_shards
    pairs = pair_shards(tmp_path / "p", "a", 2, 4)
    sp = StepSpec(StreamSpec([pairs], [1.0], True, 1), StreamSpec([urls], [1.0], True, 4),
                  pairs_per_step=2, set_items_per_step=10, lookahead_sets=4, seed=0)
    it = iter(make_loader(sp, tensor, identity_tokenizer, 0))
    seen_sets = Counter()
    for _ in range(12):
        st = next(it)["sets"]
        assert st["images"].shape == (10, 3, 8, 8)
        caps = st["tokens"]
        for i in range(10):
            cap = caps[st["img_cap"][i]]
            n, k = (int(x) for x in cap.replace("set", "").replace("cap", "").split())
            # the image's colour says which (set, image) it is: it must match its caption
            rgb = (st["images"][i][:, 4, 4] * 255).round()
            assert torch.allclose(rgb, torch.tensor(set_color(n, k), dtype=torch.float32), atol=6), (cap, rgb)
            assert st["cap_img"][st["img_cap"][i]] == i
            assert st["img_set"][i] == st["cap_set"][st["img_cap"][i]]
        # every set brings all its captions (incl. the extra text-only one), in one step
        per_set = Counter(st["cap_set"].tolist())
        names = {}
        for c, sid in zip(caps, st["cap_set"].tolist()):
            names.setdefault(sid, set()).add(int(c.split()[0][3:]))
        for sid, ns in names.items():
            (n,) = ns
            assert per_set[sid] == sizes[n] + 1
            seen_sets[n] += 1
        # a text-only caption links to no image
        assert (st["cap_img"] == -1).sum() >= len(names)
    assert len(seen_sets) > 5
