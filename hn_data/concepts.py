"""The six SPEC concepts. Each builder returns one candidate set (K images that share a
background and differ in one concept) or None when a measurement disagrees with the label.

Rules (SPEC Sec. 3.3, measured from masks):
  absolute_size     P = area/image: small <= 0.2, medium 0.4..0.6, large >= 0.8
  relative_size     R = area_A/area_B: smaller <= 0.5, equal 0.9..1.1, larger >= 2
  absolute_spatial  3x3 cell of the object's centre
  relative_spatial  A left/right/above/below B by centres (the dominant axis, 1.5x the other)
  existence         X absent / present
  count             1..9 separate instances of X
"""
import math
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .backgrounds import background
from .canvas import Scene, compose, count_components, grid_cell
from .objects import CLASSES, cutout, fill_ratio, plural

SUBSETS = {"absolute_size": 3, "relative_size": 3, "absolute_spatial": 9,
           "relative_spatial": 4, "existence": 2, "count": 9}
CELLS = ["top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@dataclass
class CandidateSet:
    subset: str
    images: list            # PIL images, member k pairs with captions[k]
    captions: List[str]
    objects: List[str]
    meta: dict


def _side_for_area(name, frac, size):
    return max(3, int(round(math.sqrt(frac * size * size / fill_ratio(name)))))


def _centered(side, cx, cy):
    return int(round(cx - side / 2)), int(round(cy - side / 2))


def absolute_size(rng, size, bg_seed, names) -> Optional[CandidateSet]:
    x = names[0]
    targets = {"small": rng.uniform(0.06, 0.16), "medium": rng.uniform(0.45, 0.55), "large": 0.92}
    inst = int(rng.integers(1 << 30))
    bg = background(size, bg_seed)
    images, caps = [], []
    for label, frac in targets.items():
        side = _side_for_area(x, frac, size)
        if label == "large":
            side = int(side * 1.6)  # overflow the canvas so any shape covers >= 0.8
        cut = cutout(x, side, np.random.default_rng(inst))
        scene = compose(bg, [(x, cut, _centered(side, size / 2, size / 2))])
        p = scene.area(0)
        ok = {"small": p <= 0.2, "medium": 0.4 <= p <= 0.6, "large": p >= 0.8}[label]
        if not ok:
            return None
        images.append(scene.image)
        caps.append(f"the {x} is {label} in the image")
    return CandidateSet("absolute_size", images, caps, [x], {"bg_seed": bg_seed})


def relative_size(rng, size, bg_seed, names) -> Optional[CandidateSet]:
    a, b = names[0], names[1]
    ia, ib = int(rng.integers(1 << 30)), int(rng.integers(1 << 30))
    base = rng.uniform(0.05, 0.09)
    bg = background(size, bg_seed)
    images, caps = [], []
    for label, ratio in (("smaller than", 0.35), ("the same size as", 1.0), ("bigger than", 2.8)):
        sa, sb = _side_for_area(a, base * math.sqrt(ratio), size), _side_for_area(b, base / math.sqrt(ratio), size)
        scene = compose(bg, [(a, cutout(a, sa, np.random.default_rng(ia)), _centered(sa, size * 0.28, size / 2)),
                             (b, cutout(b, sb, np.random.default_rng(ib)), _centered(sb, size * 0.72, size / 2))])
        r = scene.area(0) / max(scene.area(1), 1e-9)
        ok = {"smaller than": r <= 0.5, "the same size as": 0.9 <= r <= 1.1, "bigger than": r >= 2}[label]
        if not ok:
            return None
        images.append(scene.image)
        caps.append(f"the {a} is {label} the {b}")
    return CandidateSet("relative_size", images, caps, [a, b], {"bg_seed": bg_seed})


def absolute_spatial(rng, size, bg_seed, names) -> Optional[CandidateSet]:
    x = names[0]
    side = _side_for_area(x, rng.uniform(0.03, 0.06), size)
    cut = cutout(x, side, np.random.default_rng(int(rng.integers(1 << 30))))
    bg = background(size, bg_seed)
    images, caps = [], []
    for cell, name in enumerate(CELLS):
        cx, cy = (cell % 3 + 0.5) * size / 3, (cell // 3 + 0.5) * size / 3
        scene = compose(bg, [(x, cut, _centered(side, cx, cy))])
        mx, my = scene.centre(0)
        if grid_cell(mx, my, size) != cell:
            return None
        images.append(scene.image)
        where = f"the {name} corner" if "-" in name else ("the center" if name == "center" else f"the {name}")
        caps.append(f"the {x} is in {where} of the image")
    return CandidateSet("absolute_spatial", images, caps, [x], {"bg_seed": bg_seed})


def relative_spatial(rng, size, bg_seed, names) -> Optional[CandidateSet]:
    a, b = names[0], names[1]
    side = _side_for_area(a, 0.05, size)
    ca = cutout(a, side, np.random.default_rng(int(rng.integers(1 << 30))))
    cb = cutout(b, side, np.random.default_rng(int(rng.integers(1 << 30))))
    bg = background(size, bg_seed)
    d = size * 0.27
    layouts = {"to the left of": (-d, 0), "to the right of": (d, 0), "above": (0, -d), "below": (0, d)}
    images, caps = [], []
    for label, (dx, dy) in layouts.items():
        c = size / 2
        scene = compose(bg, [(a, ca, _centered(side, c + dx, c + dy)), (b, cb, _centered(side, c - dx, c - dy))])
        (ax, ay), (bx, by) = scene.centre(0), scene.centre(1)
        mdx, mdy = ax - bx, ay - by
        measured = (("to the left of" if mdx < 0 else "to the right of") if abs(mdx) > 1.5 * abs(mdy)
                    else ("above" if mdy < 0 else "below") if abs(mdy) > 1.5 * abs(mdx) else None)
        if measured != label:
            return None
        images.append(scene.image)
        caps.append(f"the {a} is {label} the {b}")
    return CandidateSet("relative_spatial", images, caps, [a, b], {"bg_seed": bg_seed})


def _scatter(rng, n, side, size, taken=()):
    """n non-overlapping boxes (x0, y0) of a given side; None if they don't fit."""
    boxes = list(taken)
    out = []
    for _ in range(n):
        for _try in range(200):
            x0, y0 = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
            if all(x0 + side + 1 <= bx or bx + bs + 1 <= x0 or y0 + side + 1 <= by or by + bs + 1 <= y0
                   for bx, by, bs in boxes):
                boxes.append((x0, y0, side))
                out.append((x0, y0))
                break
        else:
            return None
    return out


def existence(rng, size, bg_seed, names) -> Optional[CandidateSet]:
    x, y = names[0], names[1]
    side = _side_for_area(x, rng.uniform(0.04, 0.08), size)
    cx = cutout(x, side, np.random.default_rng(int(rng.integers(1 << 30))))
    cy = cutout(y, side, np.random.default_rng(int(rng.integers(1 << 30))))
    pos = _scatter(rng, 2, side, size)
    if pos is None:
        return None
    bg = background(size, bg_seed)
    without = compose(bg, [(y, cy, pos[1])])
    with_x = compose(bg, [(y, cy, pos[1]), (x, cx, pos[0])])
    if with_x.area(1) <= 0 or any(o.name == x for o in without.objects):
        return None
    return CandidateSet("existence", [without.image, with_x.image],
                        [f"there is no {x} in the image", f"there is at least one {x} in the image"],
                        [x, y], {"bg_seed": bg_seed})


def count(rng, size, bg_seed, names) -> Optional[CandidateSet]:
    x = names[0]
    side = max(4, int(size * rng.uniform(0.12, 0.16)))
    cut = cutout(x, side, np.random.default_rng(int(rng.integers(1 << 30))))
    bg = background(size, bg_seed)
    images, caps = [], []
    for n in range(1, 10):
        pos = _scatter(rng, n, side, size)
        if pos is None:
            return None
        scene = compose(bg, [(x, cut, p) for p in pos])
        if count_components(scene.union_mask()) != n:
            return None
        images.append(scene.image)
        caps.append(f"a photo of {NUMBERS[n - 1]} {x if n == 1 else plural(x)}")
    return CandidateSet("count", images, caps, [x], {"bg_seed": bg_seed})


BUILDERS = {"absolute_size": absolute_size, "relative_size": relative_size,
            "absolute_spatial": absolute_spatial, "relative_spatial": relative_spatial,
            "existence": existence, "count": count}


def build(subset: str, rng: np.random.Generator, size: int, bg_seed: int, classes=None):
    """One candidate set of `subset`, or None if its measurement disagreed (counted by caller)."""
    pool = list(classes or CLASSES)
    names = [pool[i] for i in rng.choice(len(pool), 2, replace=False)]
    cs = BUILDERS[subset](rng, size, bg_seed, names)
    if cs is not None:
        cs.meta.update({"generator": "procedural", "size": size})
    return cs
