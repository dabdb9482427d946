"""Generate the embedded default data: pair shards (img2dataset layout), candidate-set shards
for all six concepts, and a held-out benchmark in the official SPEC layout.

    python -m hn_data.make_default --out data/default

Candidate sets come from the staged engine (hn_data.engine, procedural backend), which
guarantees train and held-out never share a background seed or an object instance."""
import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .engine import Config, run as run_engine
from .objects import CLASSES
from .scenes import names_caption, object_scene
from .set_format import TarWriter, write_pair, write_stats


def pair_sample(rng, size, bg_seed, classes):
    """One image of one or two objects, captioned by object names only."""
    names = [classes[i] for i in rng.choice(len(classes), int(rng.integers(1, 3)), replace=False)]
    return object_scene(rng, names, size, bg_seed, area=(0.04, 0.3)).image, names_caption(names)


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
    ap.add_argument("--workers", type=int, default=1, help="processes for the candidate sets")
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

    sets = run_engine(Config(size=args.size, seed=args.seed), out, args.sets_per_subset,
                      args.heldout_per_subset, train_shards=args.set_shards, heldout_shards=2,
                      workers=args.workers)
    summary = {"pairs": args.pair_shards * args.pairs_per_shard, "train_sets": sets["train_sets"],
               "heldout_sets": sets["heldout_sets"], "rejected_sets": sets["rejected_sets"],
               "rejected_per_subset": sets["rejected_per_subset"], "size": args.size}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / ".complete").write_text("ok\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
