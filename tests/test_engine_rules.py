"""Every concept's labels against an independent measurement from the masks, with the
thresholds of the SPEC subsets (Peng et al., 2024, Sec. 3.3) written out here (not imported),
and the rule boundaries."""
import re

import numpy as np
import pytest
from scipy import ndimage

from hn_data import rules
from hn_data.concepts import SUBSETS, build
from hn_data.engine import Config, make_set

CELLS = ["top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right"]
NUM = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_thresholds_are_the_papers():
    assert rules.absolute_size_label(0.2) == "small" and rules.absolute_size_label(0.2001) is None
    assert rules.absolute_size_label(0.4) == "medium" and rules.absolute_size_label(0.6) == "medium"
    assert rules.absolute_size_label(0.39) is None and rules.absolute_size_label(0.61) is None
    assert rules.absolute_size_label(0.8) == "large" and rules.absolute_size_label(0.79) is None
    assert rules.relative_size_label(0.5) == "smaller than" and rules.relative_size_label(0.51) is None
    assert rules.relative_size_label(0.9) == "the same size as" == rules.relative_size_label(1.1)
    assert rules.relative_size_label(1.11) is None and rules.relative_size_label(1.99) is None
    assert rules.relative_size_label(2.0) == "bigger than"
    m = np.zeros((90, 90), bool)
    m[0:10, 80:90] = True
    assert rules.absolute_spatial_label(m) == "top-right"
    a, b = np.zeros((90, 90), bool), np.zeros((90, 90), bool)
    a[40:50, 0:10], b[40:50, 60:70] = True, True
    assert rules.relative_spatial_label(a, b) == "to the left of"
    b[:] = False
    b[70:80, 30:40] = True  # a 45-degree diagonal: neither axis dominates
    assert rules.relative_spatial_label(a, b) is None


def expected_label(subset, caption):
    if subset == "absolute_size":
        return re.search(r"is (small|medium|large) in", caption).group(1)
    if subset in ("relative_size", "relative_spatial"):
        return re.search(r"is (smaller than|the same size as|bigger than|"
                         r"to the left of|to the right of|above|below) the", caption).group(1)
    if subset == "absolute_spatial":
        return next(c for c in sorted(CELLS, key=len, reverse=True) if f"the {c}" in caption)
    if subset == "existence":
        return "absent" if "there is no " in caption else "present"
    return NUM.index(caption.split()[3]) + 1


def measured_label(subset, objs, names):
    """An independent re-implementation of SPEC Sec. 3.3 on the visible masks."""
    by = lambda n: [m for name, m, _ in objs if name == n]
    h, w = objs[0][1].shape
    if subset == "absolute_size":
        p = by(names[0])[0].sum() / (h * w)
        return "small" if p <= 0.2 else "medium" if 0.4 <= p <= 0.6 else "large" if p >= 0.8 else None
    if subset == "relative_size":
        r = by(names[0])[0].sum() / by(names[1])[0].sum()
        return ("smaller than" if r <= 0.5 else "the same size as" if 0.9 <= r <= 1.1
                else "bigger than" if r >= 2 else None)
    def centre(m):
        ys, xs = np.nonzero(m)
        return xs.mean(), ys.mean()
    if subset == "absolute_spatial":
        x, y = centre(by(names[0])[0])
        return CELLS[3 * min(int(3 * (y + 0.5) / h), 2) + min(int(3 * (x + 0.5) / w), 2)]
    if subset == "relative_spatial":
        (ax, ay), (bx, by_) = centre(by(names[0])[0]), centre(by(names[1])[0])
        dx, dy = ax - bx, ay - by_
        if abs(dx) > abs(dy):
            return "to the left of" if dx < 0 else "to the right of"
        return "above" if dy < 0 else "below"
    if subset == "existence":
        assert by(names[1]) and by(names[1])[0].sum() > 0  # the distractor is always there
        return "present" if sum(m.sum() for m in by(names[0])) > 0 else "absent"
    union = np.any(np.stack(by(names[0])), axis=0)
    return ndimage.label(union)[1]


@pytest.mark.parametrize("subset", list(SUBSETS))
def test_every_label_matches_its_masks(subset):
    cfg = Config(subsets=[subset], size=64)
    for i in range(6):
        cs, _ = make_set(cfg, "train", i)
        assert len(cs.images) == len(cs.captions) == SUBSETS[subset]
        assert len(set(cs.captions)) == len(cs.captions)
        for cap, objs in zip(cs.captions, cs.object_masks):
            assert measured_label(subset, objs, cs.objects) == expected_label(subset, cap), (cap, cs.meta)


class LyingBackend:
    """Claims its shapes fill their box when they fill half of it: aimed areas come out wrong."""
    def __init__(self):
        from hn_data.backend_procedural import ProceduralBackend
        self.p = ProceduralBackend(classes=["leaf", "cheese"])  # triangles: fill ratio 0.5
        self.name, self.classes = "lying", self.p.classes

    def fill_ratio(self, name, inst):
        return 1.0

    def __getattr__(self, k):
        return getattr(self.p, k)


def test_disagreeing_measurement_is_rejected():
    rng = np.random.default_rng(0)
    results = [build("absolute_size", rng, 64, i, backend=LyingBackend()) for i in range(5)]
    assert all(r is None for r in results)  # "medium" lands at P ~ 0.25: in the gap, rejected
