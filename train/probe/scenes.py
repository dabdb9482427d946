"""Generated probing data with exact boxes, written in the same formats users bring:
`refs.jsonl` (RefCOCOg-style, see refs.py) and `vsr_<split>.jsonl` (VSR's format).

Scenes come from the project's procedural engine (hn_data): a procedural background and 1..k
cut-outs of distinct classes whose boxes do not touch, so a class name refers to exactly one
object and each box is the tight box of its visible mask."""
import json
from pathlib import Path

import numpy as np

from hn_data.backgrounds import background
from hn_data.canvas import compose
from hn_data.objects import CLASSES, cutout

RELATIONS = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def _place(rng, size, n, lo, hi, tries=200):
    """n disjoint square boxes (x0, y0, side) inside the canvas, or None."""
    boxes = []
    for _ in range(tries):
        side = int(rng.uniform(lo, hi) * size)
        x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, 2))
        if all(x0 + side + 2 <= bx or bx + bs + 2 <= x0 or y0 + side + 2 <= by or by + bs + 2 <= y0
               for bx, by, bs in boxes):
            boxes.append((x0, y0, side))
            if len(boxes) == n:
                return boxes
    return None


def _render(rng, size, names, boxes, seed):
    items = [(nm, cutout(nm, s, rng, i), (x, y)) for i, (nm, (x, y, s)) in enumerate(zip(names, boxes))]
    scene = compose(background(size, seed), items)
    tight = []
    for obj in scene.objects:
        ys, xs = np.nonzero(obj.mask)
        tight.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    return scene.image, tight


def generate(out_dir, counts, size=128, seed=0, max_objects=3, obj_range=(0.12, 0.4)):
    """counts: {split: number of scenes}; writes images/, refs.jsonl and vsr_<split>.jsonl.
    Returns out_dir. Deterministic in (seed, counts, size)."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    classes = sorted(CLASSES)
    refs = []
    for s_idx, (split, n) in enumerate(sorted(counts.items())):
        rng = np.random.default_rng([seed, s_idx])
        vsr = []
        for i in range(n):
            # referring-expression scene: 1..max_objects distinct classes
            k = int(rng.integers(1, max_objects + 1))
            boxes = _place(rng, size, k, *obj_range) or _place(rng, size, 1, *obj_range)
            names = list(rng.choice(classes, len(boxes), replace=False))
            img, tight = _render(rng, size, names, boxes, int(rng.integers(1 << 30)))
            name = f"{split}-{i:05d}.png"
            img.save(out / "images" / name)
            for nm, (x0, y0, x1, y1) in zip(names, tight):
                refs.append({"image": f"images/{name}", "bbox": [x0, y0, x1 - x0, y1 - y0],
                             "phrase": f"the {nm}", "category": nm, "split": split,
                             "width": size, "height": size})
            # spatial-relation scene: two objects, the relation read from the rendered centres
            vsr.append(_relation_scene(rng, size, classes, out, f"{split}-rel-{i:05d}.png", obj_range))
        with open(out / f"vsr_{split}.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in vsr if r)
    with open(out / "refs.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in refs)
    return out


def _relation_scene(rng, size, classes, out, name, obj_range):
    for _ in range(20):
        boxes = _place(rng, size, 2, *obj_range)
        if boxes is None:
            continue
        names = list(rng.choice(classes, 2, replace=False))
        (ax, ay, a_s), (bx, by, b_s) = boxes
        dx, dy = (bx + b_s / 2) - (ax + a_s / 2), (by + b_s / 2) - (ay + a_s / 2)
        # the dominant axis decides, and only when it clearly dominates (no ambiguous diagonals)
        if max(abs(dx), abs(dy)) < 1.5 * min(abs(dx), abs(dy)) or max(abs(dx), abs(dy)) < 0.15 * size:
            continue
        if abs(dx) > abs(dy):
            true_rel = "left of" if dx > 0 else "right of"
        else:
            true_rel = "above" if dy > 0 else "below"
        img, _ = _render(rng, size, names, boxes, int(rng.integers(1 << 30)))
        img.save(out / "images" / name)
        label = int(rng.integers(0, 2))
        rel = true_rel if label else RELATIONS[true_rel]
        return {"image": f"images/{name}", "caption": f"the {names[0]} is {rel} the {names[1]}",
                "label": label, "relation": rel, "subj": names[0], "obj": names[1]}
    return None
