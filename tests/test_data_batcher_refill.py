"""Regression: a step may need more sets than the look-ahead buffer holds; the batcher must
refill mid-step instead of ending the stream."""
from collections import Counter

import numpy as np
import pytest

from train.data.set_batcher import plan_steps


@pytest.mark.parametrize("n_items,lookahead", [(12, 1), (24, 2), (100, 8), (768, 32)])
def test_small_lookahead_large_steps_keep_going(n_items, lookahead):
    sizes = [int(k) for k in np.random.default_rng(0).integers(2, 10, 3000)]
    steps = list(plan_steps(sizes, n_items, lookahead, np.random.default_rng(1), Counter(), size=lambda s: s))
    # every step is exactly full, and nearly all the data is used (only trimmed images are lost)
    assert all(sum(s if keep is None else len(keep) for s, keep in st) == n_items for st in steps)
    assert len(steps) >= 0.75 * sum(sizes) // n_items
