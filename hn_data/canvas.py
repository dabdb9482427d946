"""Compose cut-outs on a background and measure the result from the masks.

Every concept label is *measured* from the rendered masks (never trusted from the layout
request); the concept modules reject a set whose measurement disagrees with its label."""
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np
from PIL import Image


@dataclass
class Placed:
    name: str
    mask: np.ndarray            # bool HxW, clipped to the canvas
    box: Tuple[int, int, int, int]  # x0, y0, x1, y1 requested (may exceed the canvas)
    cut_area: int = 0           # pixels of the whole cut-out (to tell how much stays visible)
    instance: int = -1          # object-library instance id (train/held-out disjointness)


@dataclass
class Scene:
    image: Image.Image
    objects: List[Placed] = field(default_factory=list)

    def area(self, i: int) -> float:
        m = self.objects[i].mask
        return float(m.sum()) / m.size

    def centre(self, i: int) -> Tuple[float, float]:
        ys, xs = np.nonzero(self.objects[i].mask)
        return float(xs.mean()), float(ys.mean())

    def union_mask(self) -> np.ndarray:
        h, w = self.image.size[1], self.image.size[0]
        m = np.zeros((h, w), bool)
        for o in self.objects:
            m |= o.mask
        return m


def compose(bg: Image.Image, items) -> Scene:
    """items: list of (name, RGBA cut-out, (x0, y0)[, instance]) pasted in order. Later items
    cover earlier ones; masks are updated so each pixel belongs to at most one object."""
    img = bg.copy().convert("RGB")
    w, h = img.size
    placed = []
    for item in items:
        name, cut, (x0, y0) = item[:3]
        alpha = np.array(cut.split()[-1]) > 127
        # paste only the mask pixels at full opacity: soft alpha edges would change background
        # pixels outside the measured mask, and then the mask would not say what differs
        cut = cut.copy()
        cut.putalpha(Image.fromarray(alpha.astype(np.uint8) * 255))
        img.paste(cut, (x0, y0), cut)
        mask = np.zeros((h, w), bool)
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + cut.size[0], w), min(y0 + cut.size[1], h)
        if cx1 > cx0 and cy1 > cy0:
            mask[cy0:cy1, cx0:cx1] = alpha[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        for p in placed:
            p.mask &= ~mask
        placed.append(Placed(name, mask, (x0, y0, x0 + cut.size[0], y0 + cut.size[1]),
                             int(alpha.sum()), int(item[3]) if len(item) > 3 else -1))
    return Scene(img, placed)


def grid_cell(x: float, y: float, size: int) -> int:
    """Row-major index 0..8 of the 3x3 grid cell holding point (x, y)."""
    col = min(int(3 * x / size), 2)
    row = min(int(3 * y / size), 2)
    return 3 * row + col
