"""Object scenes for pair data and zero-shot images: procedural cut-outs at random places on one
background. The one generator behind the default pairs (hn_data.make_default), the
reproduction's pairs and zero-shot images (train/repro/data.py) and the diagnosis demo data
(train/eval/demo_data.py); candidate sets, whose labels are measured, come from hn_data.concepts.

Each caller picks the object count, the area range and where a corner may fall; the draws are
made in one fixed order (area, corner, cut-out per object), so a seed gives the same images."""
import numpy as np

from .backgrounds import background
from .canvas import compose
from .objects import cutout, fill_ratio


def overhanging(side: int, size: int):
    """Top-left corners that let up to a quarter of the object's box leave the image."""
    return -side // 4, size - side * 3 // 4


def inside(side: int, size: int):
    """Top-left corners that keep the object's box whole inside the image."""
    return 0, size - side + 1


def object_scene(rng, names, size: int, bg_seed: int, area=(0.04, 0.3), corners=overhanging,
                 min_side: int = 0):
    """The composed scene (hn_data.canvas) of the named objects on background `bg_seed`. Each
    object covers a fraction of the image drawn uniformly from `area` (its box is scaled by the
    shape's fill ratio), at a corner drawn from corners(side, size) = [lo, hi) on both axes."""
    items = []
    for name in names:
        side = max(min_side, int(np.sqrt(rng.uniform(*area) * size * size / fill_ratio(name))))
        lo, hi = corners(side, size)
        x0, y0 = (int(v) for v in rng.integers(lo, hi, 2))
        items.append((name, cutout(name, side, rng), (x0, y0)))
    return compose(background(size, bg_seed), items)


def names_caption(names) -> str:
    """The caption of a scene that names its objects only: "a photo of a kite and a lemon"."""
    return "a photo of a " + " and a ".join(names)
