"""Stage 3: arrange cut-outs on one shared background with exactly one concept varied.

Each layout function plans K members (objects, positions, intended label, caption); `build`
renders them with a backend, re-measures every image from its masks (hn_data.rules) and again
from the pixels of every format it ships (hn_data.shipped), and returns None - the caller
counts a reject - when any measurement disagrees with its label.
"""
import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

from .rules import CELLS, DIRECTIONS, NUMBERS, RELATIVE_SIZE_WORDS, measure

SUBSETS = {"absolute_size": 3, "relative_size": 3, "absolute_spatial": 9,
           "relative_spatial": 4, "existence": 2, "count": 9}


@dataclass
class CandidateSet:
    subset: str
    images: list            # PIL images, member k pairs with captions[k]
    captions: List[str]
    objects: List[str]
    meta: dict
    # per member: bool HxW where it may differ from the background
    regions: list = field(default_factory=list)
    object_masks: list = field(default_factory=list)  # per member: [(name, visible mask, cut-out area)]
    png: list = field(default_factory=list)   # per member: the PNG bytes whose pixels were checked


@dataclass
class Member:
    label: str                # the label word(s) the caption states
    caption: str
    items: list               # (name, cut RGBA, (x0, y0), instance)


def _side(backend, name, inst, frac, size):
    """Longer side of a cut-out that covers `frac` of the image."""
    return max(3, int(round(math.sqrt(frac * size * size / backend.fill_ratio(name, inst)))))


def _at(cut, cx, cy):
    return int(round(cx - cut.size[0] / 2)), int(round(cy - cut.size[1] / 2))


def absolute_size(rng, size, names, inst, backend):
    x, ix = names[0], inst[0]
    targets = {"small": rng.uniform(0.06, 0.16), "medium": rng.uniform(0.45, 0.55), "large": 0.92}
    out = []
    for label, frac in targets.items():
        side = _side(backend, x, ix, frac, size)
        if label == "large":
            side = int(side * 1.6)  # overflow the canvas so any shape covers >= 0.8
        cut = backend.cutout(x, side, ix)
        out.append(Member(label, f"the {x} is {label} in the image",
                          [(x, cut, _at(cut, size / 2, size / 2), ix)]))
    return out


def relative_size(rng, size, names, inst, backend):
    (a, b), (ia, ib) = names, inst
    base = rng.uniform(0.05, 0.09)
    out = []
    for label, ratio in zip(RELATIVE_SIZE_WORDS, (0.35, 1.0, 2.8)):
        ca = backend.cutout(a, _side(backend, a, ia, base * math.sqrt(ratio), size), ia)
        cb = backend.cutout(b, _side(backend, b, ib, base / math.sqrt(ratio), size), ib)
        out.append(Member(label, f"the {a} is {label} the {b}",
                          [(a, ca, _at(ca, size * 0.28, size / 2), ia),
                           (b, cb, _at(cb, size * 0.72, size / 2), ib)]))
    return out


def absolute_spatial(rng, size, names, inst, backend):
    x, ix = names[0], inst[0]
    cut = backend.cutout(x, _side(backend, x, ix, rng.uniform(0.03, 0.06), size), ix)
    out = []
    for cell, name in enumerate(CELLS):
        cx, cy = (cell % 3 + 0.5) * size / 3, (cell // 3 + 0.5) * size / 3
        where = f"the {name} corner" if "-" in name else ("the center" if name == "center" else f"the {name}")
        out.append(Member(name, f"the {x} is in {where} of the image", [(x, cut, _at(cut, cx, cy), ix)]))
    return out


def relative_spatial(rng, size, names, inst, backend):
    (a, b), (ia, ib) = names, inst
    ca = backend.cutout(a, _side(backend, a, ia, 0.05, size), ia)
    cb = backend.cutout(b, _side(backend, b, ib, 0.05, size), ib)
    d, c = size * 0.27, size / 2
    offsets = dict(zip(DIRECTIONS, [(-d, 0), (d, 0), (0, -d), (0, d)]))
    return [Member(label, f"the {a} is {label} the {b}",
                   [(a, ca, _at(ca, c + dx, c + dy), ia), (b, cb, _at(cb, c - dx, c - dy), ib)])
            for label, (dx, dy) in offsets.items()]


# Background pixels between two instances' boxes. One pixel is what a single ringing pixel of
# a lossy encoding fills; a gap of MIN_GAP needs a blur reaching 2 px from both edges to
# bridge, which the shipped JPEG (4:4:4, quality 95) does not do. hn_data.shipped checks it.
MIN_GAP = 3


def _scatter(rng, n, cut, size):
    """n positions (x0, y0) for a cut-out whose boxes are >= MIN_GAP px apart; None if they
    don't fit."""
    w, h = cut.size
    g = MIN_GAP
    boxes = []
    for _ in range(n):
        for _try in range(200):
            x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            if all(x0 + w + g <= bx or bx + w + g <= x0 or y0 + h + g <= by or by + h + g <= y0
                   for bx, by in boxes):
                boxes.append((x0, y0))
                break
        else:
            return None
    return boxes


def existence(rng, size, names, inst, backend):
    (x, y), (ix, iy) = names, inst
    cx = backend.cutout(x, _side(backend, x, ix, rng.uniform(0.04, 0.08), size), ix)
    cy = backend.cutout(y, _side(backend, y, iy, rng.uniform(0.04, 0.08), size), iy)
    px, py = _scatter(rng, 1, cx, size), _scatter(rng, 1, cy, size)
    if px is None or py is None:
        return None
    other = (y, cy, py[0], iy)
    return [Member("no", f"there is no {x} in the image", [other]),
            Member("at least one", f"there is at least one {x} in the image", [other, (x, cx, px[0], ix)])]


def count(rng, size, names, inst, backend):
    x, ix = names[0], inst[0]
    cut = backend.cutout(x, max(4, int(size * rng.uniform(0.12, 0.16))), ix)
    out = []
    for n in range(1, 10):
        pos = _scatter(rng, n, cut, size)
        if pos is None:
            return None
        out.append(Member(NUMBERS[n - 1], f"a photo of {NUMBERS[n - 1]} {x if n == 1 else backend.plural(x)}",
                          [(x, cut, p, ix) for p in pos]))
    return out


BUILDERS = {"absolute_size": absolute_size, "relative_size": relative_size,
            "absolute_spatial": absolute_spatial, "relative_spatial": relative_spatial,
            "existence": existence, "count": count}


def random_instance(name, rng):
    return int(rng.integers(1 << 30))


def build(subset: str, rng: np.random.Generator, size: int, bg_seed: int, classes=None,
          backend=None, instance: Callable = random_instance, rejects=None) -> Optional[CandidateSet]:
    """One candidate set of `subset`, or None if a measurement disagreed (counted by caller).

    backend: stages 1-2 and 4 (default: procedural); instance(name, rng) -> instance id
    (the engine passes one that draws from the split's own instance pool); rejects: a
    Counter that gets why a set was rejected ("layout", "masks", "backend", or the shipped
    format, "png"/"jpeg", whose decoded pixels measured another label)."""
    from collections import Counter

    from .backends import RejectedSample
    rejects = Counter() if rejects is None else rejects
    try:
        return _build(subset, rng, size, bg_seed, classes, backend, instance, rejects)
    except RejectedSample:
        rejects["backend"] += 1
        return None


def _build(subset, rng, size, bg_seed, classes, backend, instance, rejects):
    from .canvas import compose
    from .shipped import check_member
    if backend is None:
        from .backends import make_backend
        backend = make_backend("procedural", classes=classes)
    pool = list(classes or backend.classes)
    names = [pool[i] for i in rng.choice(len(pool), 2, replace=False)]
    inst = [instance(n, rng) for n in names]
    members = BUILDERS[subset](rng, size, names, inst, backend)
    if members is None:
        rejects["layout"] += 1
        return None
    bg = backend.background(size, bg_seed)
    images, regions, measured, boxes, masks, pngs = [], [], [], [], [], []
    for k, m in enumerate(members):
        scene = compose(bg, m.items)
        got = measure(subset,
                      [{"name": o.name, "mask": o.mask, "cut_area": o.cut_area} for o in scene.objects],
                      names, scene.image.size)
        masks.append([(o.name, o.mask, o.cut_area) for o in scene.objects])
        if got != m.label:
            rejects["masks"] += 1
            return None
        image, region = backend.finish(scene, bg, bg_seed * 16 + k)
        union = scene.union_mask()
        empty = np.asarray(image).copy()  # the member without its objects: what they cover
        empty[union] = np.asarray(bg.convert("RGB"))[union]
        fmt, files = check_member(subset, image, empty, masks[-1], names, m.label)
        if fmt is not None:
            rejects[fmt] += 1
            return None
        pngs.append(files["png"])
        images.append(image)
        regions.append(region)
        measured.append(got)
        boxes.append(_bbox(region))
    used = sorted({(it[0], it[3]) for m in members for it in m.items})
    meta = {"bg_seed": int(bg_seed), "generator": backend.name, "size": size, "measured": measured,
            "instances": [[n, int(i)] for n, i in used], "regions": boxes}
    n_objects = 2 if subset in ("relative_size", "relative_spatial", "existence") else 1
    return CandidateSet(subset, images, [m.caption for m in members], names[:n_objects], meta, regions, masks,
                        pngs)


def _bbox(mask):
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if len(xs) else []
