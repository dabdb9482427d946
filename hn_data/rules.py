"""The six SPEC concepts' labelling rules, applied to *measurements taken from masks*.

Thresholds are SPEC Sec. 3.3, Eq. 1-2 verbatim (the gaps between levels are the paper's
safety margins). Where the paper is silent we take the stricter reading and say so:
  - "centre point": the mask's bounding-box centre AND its centroid must give the same answer
    (a triangle's two centres can differ; a set whose label depends on the choice is ambiguous);
  - relative position: the dominant axis of the centre offset must be >= DIRECTION_MARGIN times
    the other one (a 45-degree diagonal is neither "left of" nor "above");
  - existence: "present" means at least PRESENT_MIN_VISIBLE of the cut-out is visible,
    "absent" means zero pixels of that class;
  - count: n separate connected components of the class's pixels, each instance visible.
"""
from typing import List, Optional, Sequence

import numpy as np

SMALL_MAX, MEDIUM_MIN, MEDIUM_MAX, LARGE_MIN = 0.2, 0.4, 0.6, 0.8       # Eq. 1, P = area / image
SMALLER_MAX, EQUAL_MIN, EQUAL_MAX, LARGER_MIN = 0.5, 0.9, 1.1, 2.0       # Eq. 2, R = S_A / S_B
DIRECTION_MARGIN = 1.5
PRESENT_MIN_VISIBLE = 0.5

CELLS = ["top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right"]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIRECTIONS = ["to the left of", "to the right of", "above", "below"]
RELATIVE_SIZE_WORDS = ["smaller than", "the same size as", "bigger than"]


def _level(v: float, bounds, words) -> Optional[str]:
    """The word of the level v lies in, for Eq. 1-2's three levels: words[0] up to low_max,
    words[1] from mid_min to mid_max, words[2] from high_min; None inside a safety gap."""
    low_max, mid_min, mid_max, high_min = bounds
    if v <= low_max:
        return words[0]
    if mid_min <= v <= mid_max:
        return words[1]
    if v >= high_min:
        return words[2]
    return None


def absolute_size_label(p: float) -> Optional[str]:
    return _level(p, (SMALL_MAX, MEDIUM_MIN, MEDIUM_MAX, LARGE_MIN), ("small", "medium", "large"))


def relative_size_label(r: float) -> Optional[str]:
    return _level(r, (SMALLER_MAX, EQUAL_MIN, EQUAL_MAX, LARGER_MIN), RELATIVE_SIZE_WORDS)


def cell_of(x: float, y: float, w: int, h: int) -> int:
    """Row-major index 0..8 of the 3x3 grid cell holding (x, y), pixel-centre coordinates."""
    col = min(int(3 * (x + 0.5) / w), 2)
    row = min(int(3 * (y + 0.5) / h), 2)
    return 3 * row + col


def centres(mask: np.ndarray):
    """(bbox centre, centroid) of a boolean mask, each (x, y); None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    box = ((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2)
    return box, (float(xs.mean()), float(ys.mean()))


def absolute_spatial_label(mask: np.ndarray) -> Optional[str]:
    c = centres(mask)
    if c is None:
        return None
    h, w = mask.shape
    cells = {cell_of(x, y, w, h) for x, y in c}
    return CELLS[cells.pop()] if len(cells) == 1 else None


def direction(a, b) -> Optional[str]:
    dx, dy = a[0] - b[0], a[1] - b[1]
    if abs(dx) >= DIRECTION_MARGIN * abs(dy) and dx != 0:
        return "to the left of" if dx < 0 else "to the right of"
    if abs(dy) >= DIRECTION_MARGIN * abs(dx) and dy != 0:
        return "above" if dy < 0 else "below"
    return None


def relative_spatial_label(mask_a: np.ndarray, mask_b: np.ndarray) -> Optional[str]:
    ca, cb = centres(mask_a), centres(mask_b)
    if ca is None or cb is None:
        return None
    labels = {direction(ca[0], cb[0]), direction(ca[1], cb[1])}
    return labels.pop() if len(labels) == 1 else None


def components(mask: np.ndarray) -> int:
    from scipy import ndimage
    return int(ndimage.label(mask)[1])


def measure(subset: str, objects: Sequence[dict], names: List[str], size) -> Optional[str]:
    """The label word(s) of one rendered image, measured from its masks.

    objects: per placed object {"name", "mask" (bool HxW, visible pixels), "cut_area"
    (pixels of the whole cut-out)}; names: the set's object names (target first)."""
    h, w = size[1], size[0]
    x = names[0]
    mine = [o for o in objects if o["name"] == x]
    if subset == "absolute_size":
        if len(mine) != 1:
            return None
        return absolute_size_label(mine[0]["mask"].sum() / (h * w))
    if subset == "relative_size":
        b = [o for o in objects if o["name"] == names[1]]
        if len(mine) != 1 or len(b) != 1 or b[0]["mask"].sum() == 0:
            return None
        return relative_size_label(mine[0]["mask"].sum() / b[0]["mask"].sum())
    if subset == "absolute_spatial":
        return absolute_spatial_label(mine[0]["mask"]) if len(mine) == 1 else None
    if subset == "relative_spatial":
        b = [o for o in objects if o["name"] == names[1]]
        if len(mine) != 1 or len(b) != 1:
            return None
        return relative_spatial_label(mine[0]["mask"], b[0]["mask"])
    if subset == "existence":
        others = [o for o in objects if o["name"] != x]
        if not others or any(_visible(o) < PRESENT_MIN_VISIBLE for o in others):
            return None  # the distractor must be visible in every member
        pix = sum(int(o["mask"].sum()) for o in mine)
        if pix == 0:
            return "no"
        return "at least one" if all(_visible(o) >= PRESENT_MIN_VISIBLE for o in mine) else None
    if subset == "count":
        if not mine or any(_visible(o) < PRESENT_MIN_VISIBLE for o in mine):
            return None
        union = np.zeros((h, w), bool)
        for o in mine:
            union |= o["mask"]
        n = components(union)
        # every instance must be its own component: no two touching, none split in pieces
        if n != len(mine) or any(components(o["mask"]) != 1 for o in mine) or n > 9:
            return None
        return NUMBERS[n - 1]
    raise ValueError(f"unknown subset {subset!r}")


def _visible(o) -> float:
    return float(o["mask"].sum()) / max(o["cut_area"], 1)
