"""Generate the embedded default data: pair shards (img2dataset layout), candidate-set shards
for all six concepts, and a held-out benchmark in the official SPEC layout.

    python -m hn_data.make_default --out data/default

Train and held-out never share a background seed or an object instance (disjoint seed ranges)."""
import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .backgrounds import background
from .canvas import compose
from .concepts import SUBSETS, build
from .objects import CLASSES, cutout, fill_ratio
from .set_format import TarWriter, write_pair, write_set, write_stats
from .spec_layout import write_spec

HELDOUT_SEED_OFFSET = 1_000_000_000


def pair_sample(rng, size, bg_seed, classes):
    """One image of one or two objects, captioned by object names only."""
    names = [classes[i] for i in rng.choice(len(classes), int(rng.integers(1, 3)), replace=False)]
    bg = background(size, bg_seed)
    items = []
    for k, name in enumerate(names):
        side = int(np.sqrt(rng.uniform(0.04, 0.3) * size * size / fill_ratio(name)))
        x0, y0 = int(rng.integers(-side // 4, size - side * 3 // 4)), int(rng.integers(-side // 4, size - side * 3 // 4))
        items.append((name, cutout(name, side, rng), (x0, y0)))
    cap = "a photo of a " + " and a ".join(names)
    return compose(bg, items).image, cap


def make_sets(n_per_subset, size, seed, desc):
    rng = np.random.default_rng(seed)
    out, rejected = [], 0
    bg_seed = seed
    for subset in tqdm(SUBSETS, desc=desc):
        made = 0
        while made < n_per_subset:
            bg_seed += 1
            cs = build(subset, rng, size, bg_seed)
            if cs is None:
                rejected += 1
                continue
            out.append(cs)
            made += 1
    return out, rejected


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/default")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--pair-shards", type=int, default=8)
    ap.add_argument("--pairs-per-shard", type=int, default=256)
    ap.add_argument("--set-shards", type=int, default=8)
    ap.add_argument("--sets-per-subset", type=int, default=40, help="training sets per subset")
    ap.add_argument("--heldout-per-subset", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    out = Path(args.out)
    (out / "pairs").mkdir(parents=True, exist_ok=True)
    (out / "sets").mkdir(parents=True, exist_ok=True)
    classes = list(CLASSES)
    rng = np.random.default_rng(args.seed)
    for s in tqdm(range(args.pair_shards), desc="pair shards"):
        path = out / "pairs" / f"pairs-{s:06d}.tar"
        w = TarWriter(path)
        for i in range(args.pairs_per_shard):
            img, cap = pair_sample(rng, args.size, args.seed * 7919 + s * 100_000 + i, classes)
            write_pair(w, f"{s:05d}{i:04d}", img, cap)
        w.close()
        write_stats(path, args.pairs_per_shard)

    train_sets, rej_train = make_sets(args.sets_per_subset, args.size, args.seed + 1, "train sets")
    order = np.random.default_rng(args.seed).permutation(len(train_sets))
    writers = [TarWriter(out / "sets" / f"sets-{s:06d}.tar") for s in range(args.set_shards)]
    for n, j in enumerate(order):
        write_set(writers[n % args.set_shards], f"{n:08d}", train_sets[j])
    for w in writers:
        w.close()

    held, rej_held = make_sets(args.heldout_per_subset, args.size, args.seed + HELDOUT_SEED_OFFSET, "held-out sets")
    write_spec(out / "spec_heldout", held)
    summary = {"pairs": args.pair_shards * args.pairs_per_shard, "train_sets": len(train_sets),
               "heldout_sets": len(held), "rejected_sets": rej_train + rej_held, "size": args.size}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / ".complete").write_text("ok\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
