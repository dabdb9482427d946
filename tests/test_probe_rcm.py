"""The Region Cell Matching builder keeps the paper's balance rules (003, Appendix A)."""
from collections import Counter

import numpy as np
import pytest

from train.probe.refs import Ref
from train.probe.tasks import rcm


def _refs(n, split="train", seed=0, centre_bias=True):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        # centred boxes dominate, as in RefCOCOg, so downsampling has work to do
        c = rng.normal(0.5, 0.2, 2).clip(0.02, 0.98) if centre_bias else rng.uniform(0.02, 0.98, 2)
        out.append(Ref(f"img{i}.png", f"the thing {i % 5}",
                       (c[0] - 0.01, c[1] - 0.01, c[0] + 0.01, c[1] + 0.01),
                       f"cat{i % 5}", split))
    return out


def test_rcm_balance_rules():
    refs = _refs(3000)
    ex = rcm.build_split(refs, np.random.default_rng(0))
    pos = Counter(c for r, c, y in ex if y == 1)
    n = pos[0]
    assert n > 0 and n % 8 == 0
    assert set(pos.values()) == {n} and len(pos) == 9                  # positives balanced over cells
    neg = [(rcm.cell_of(r), c) for r, c, y in ex if y == 0]
    assert len(neg) == 9 * n                                            # as many negatives as positives
    assert all(true != claimed for true, claimed in neg)                # a negative is really wrong
    pairs = Counter(neg)
    assert set(pairs.values()) == {n // 8} and len(pairs) == 72         # n/8 from every other cell
    per_true = Counter(true for true, _ in neg)
    assert set(per_true.values()) == {n}                                # the true cell tells nothing either
    assert all(rcm.cell_of(r) == c for r, c, y in ex if y == 1)


def test_rcm_needs_every_cell():
    refs = [r for r in _refs(2000, centre_bias=False) if rcm.cell_of(r) != 2]
    with pytest.raises(ValueError, match="top right"):
        rcm.build_split(refs, np.random.default_rng(0))


def test_rcm_task_statements_name_the_cell():
    refs = _refs(1500, "train") + _refs(900, "val", 1) + _refs(900, "test", 2)
    task = rcm.build(refs)
    tr = task.splits["train"]
    assert all(cat in text for text, cat in zip(tr.texts, tr.categories))
    assert tr.targets.mean().item() == pytest.approx(0.5)
