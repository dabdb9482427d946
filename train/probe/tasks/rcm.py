"""Region Cell Matching (Pantazopoulos et al., "Lost in Space", 2024, Appendix A): does
"<phrase> in the <cell>" hold?

As the paper builds it, per split:
1. each referring expression's box goes to the 3x3 cell holding its centre (= the nearest cell
   centre on a uniform grid);
2. positives are downsampled so the nine cells hold the same number n of them (n rounded down
   to a multiple of 8, so step 3 divides evenly);
3. for each cell i, n/8 negatives are drawn from *every* other cell j: a ref whose box sits in j,
   paired with the statement for cell i.
So the statement's cell alone says nothing (n positives and n negatives each), and neither
does the box's true cell (n positives, 8 * n/8 negatives)."""
from collections import defaultdict

import numpy as np
import torch

from hn_data.canvas import grid_cell

from .common import SPLITS, Split, Task

# Row-major, as hn_data.canvas.grid_cell numbers them; the paper's wording ("top left", "middle").
CELL_NAMES = ["top left", "top middle", "top right", "middle left", "middle", "middle right",
              "bottom left", "bottom middle", "bottom right"]
TEMPLATE = "{phrase} is in the {cell} part of the image"


def cell_of(ref) -> int:
    # grid_cell works in pixels of a size x size canvas; boxes are normalised, so size = 1
    cx, cy = ref.centre
    return grid_cell(cx, cy, 1)


def build_split(refs, rng: np.random.Generator, template=TEMPLATE):
    """Returns a list of (ref, statement cell, label) following the balance rules above."""
    by_cell = defaultdict(list)
    for r in refs:
        by_cell[cell_of(r)].append(r)
    empty = [CELL_NAMES[c] for c in range(9) if not by_cell[c]]
    if empty:
        raise ValueError(f"RCM: no box centred in cell(s) {empty}; cannot balance positives over nine cells")
    n = min(len(v) for v in by_cell.values()) // 8 * 8
    if n == 0:
        raise ValueError(f"RCM: the emptiest cell has {min(len(v) for v in by_cell.values())} boxes; "
                         "need at least 8 per cell")
    out = []
    for c in range(9):
        pick = rng.choice(len(by_cell[c]), n, replace=False)
        out += [(by_cell[c][k], c, 1) for k in pick]
    for i in range(9):
        for j in range(9):
            if j != i:
                pick = rng.choice(len(by_cell[j]), n // 8, replace=False)
                out += [(by_cell[j][k], i, 0) for k in pick]
    order = rng.permutation(len(out))
    return [out[k] for k in order]


def build(refs, seed=0, template=TEMPLATE) -> Task:
    splits = {}
    for s_idx, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, s_idx])
        ex = build_split([r for r in refs if r.split == split], rng, template)
        splits[split] = Split(
            images=[r.image for r, _, _ in ex],
            texts=[template.format(phrase=r.phrase, cell=CELL_NAMES[c]) for r, c, _ in ex],
            # embed mode: the object and the cell are the only things the text could say
            keys=[f"{r.category}|{c}" for r, c, _ in ex],
            targets=torch.tensor([float(y) for _, _, y in ex]),
            categories=[CELL_NAMES[c] for _, c, _ in ex],
        )
    return Task("rcm", "binary", splits).check()
