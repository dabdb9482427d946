"""Generate the embedded default data: pair shards (img2dataset layout), candidate-set shards
for all six concepts, and a held-out benchmark in the official SPEC layout.

    python -m hn_data.make_default out=data/default

Candidate sets come from the staged engine (hn_data.engine, procedural backend), which
guarantees train and held-out never share a background seed or an object instance."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .cli import ConfigError, command, setting
from .engine import Config, run as run_engine
from .objects import CLASSES
from .run_summary import write_summary
from .scenes import names_caption, object_scene
from .set_format import TarWriter, write_pair, write_stats


def pair_sample(rng, size, bg_seed, classes):
    """One image of one or two objects, captioned by object names only."""
    names = [classes[i] for i in rng.choice(len(classes), int(rng.integers(1, 3)), replace=False)]
    return object_scene(rng, names, size, bg_seed, area=(0.04, 0.3)).image, names_caption(names)


@dataclass
class MakeDefaultCommand:
    out: str = setting("data/default", "output folder (the run directory)")
    size: int = setting(64, "image side in pixels")
    pair_shards: int = setting(8)
    pairs_per_shard: int = setting(256)
    set_shards: int = setting(8)
    sets_per_subset: int = setting(40, "training sets per subset")
    heldout_per_subset: int = setting(20)
    seed: int = setting(0)
    workers: int = setting(1, "processes for the candidate sets")


def check(args: MakeDefaultCommand):
    for name in ("size", "pair_shards", "pairs_per_shard", "set_shards", "workers"):
        if getattr(args, name) < 1:
            raise ConfigError(f"invalid value {name}={getattr(args, name)}: must be >= 1")


def make_default(args: MakeDefaultCommand) -> dict:
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
    return write_summary(out, summary, mark_complete=True)


main = command(MakeDefaultCommand, make_default, prog="hnclip-make-data", doc=__doc__, run_dir="${out}",
               check=check)


if __name__ == "__main__":
    main()
