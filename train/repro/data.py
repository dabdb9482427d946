"""Generate every data set of the reproduction with hn_data's public functions.

    pairs/pretrain-*.tar   pre-training pairs: 1-3 objects anywhere, at any size, captioned by
                           their names only ("a photo of a kite and a lemon"), so the model
                           sees positions, sizes and counts without ever being told them
    pairs/finetune-*.tar   the fine-tuning pair stream (our stand-in for LAION): same kind
    sets/sets-*.tar        training candidate sets, all six subsets
    spec_heldout/          held-out sets in the official SPEC layout
    zeroshot/              single-object images + labels.json for object-class zero-shot

Every split draws backgrounds and object instances from its own disjoint seed range, so no
held-out image, background or instance is ever seen in training.

    python -m train.repro.data out=outputs/repro_mini/data heldout_per_subset=200"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hn_data.cli import REQUIRED, ConfigError, command, setting
from hn_data.concepts import SUBSETS, build
from hn_data.objects import CLASSES
from hn_data.run_summary import write_summary
from hn_data.scenes import inside, names_caption, object_scene
from hn_data.set_format import TarWriter, write_pair, write_set, write_stats
from hn_data.spec_layout import write_spec

# disjoint seed ranges per split (backgrounds and instance RNGs both derive from them)
SEEDS = {"pretrain": 10_000_000, "finetune": 20_000_000, "sets": 30_000_000,
         "heldout": 40_000_000, "zeroshot": 50_000_000}
NAMES = sorted(CLASSES)


def pair_image(rng, size, bg_seed):
    """1-3 objects (classes may repeat) at random places and sizes; caption = names only."""
    n = int(rng.integers(1, 4))
    names = [NAMES[i] for i in rng.integers(0, len(NAMES), n)]
    scene = object_scene(rng, names, size, bg_seed, area=(0.01, 0.25), min_side=4)
    # name only objects that stayed visible (a later object may cover an earlier one)
    visible = list(dict.fromkeys(o.name for o in scene.objects if o.mask.sum() >= 4))
    if not visible:
        return None
    rng.shuffle(visible)
    return scene.image, names_caption(visible)


def write_pairs(out: Path, prefix, n_shards, per_shard, size, seed):
    rng = np.random.default_rng(seed)
    bg_seed = seed
    for s in range(n_shards):
        path = out / f"{prefix}-{s:06d}.tar"
        w = TarWriter(path)
        made = 0
        while made < per_shard:
            bg_seed += 1
            sample = pair_image(rng, size, bg_seed)
            if sample is not None:
                write_pair(w, f"{s:05d}{made:05d}", *sample)
                made += 1
        w.close()
        write_stats(path, per_shard)


def make_sets(n_per_subset, size, seed):
    rng = np.random.default_rng(seed)
    out, rejected, bg_seed = [], 0, seed
    for subset in SUBSETS:
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


def write_zeroshot(root: Path, per_class, size, seed):
    """One object per image, small to medium, anywhere: recognising it needs colour AND shape
    (classes share both), so a weak model is clearly below 100%."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    labels = []
    for k in range(per_class * len(NAMES)):
        name = NAMES[k % len(NAMES)]
        img = object_scene(rng, [name], size, seed + k, area=(0.01, 0.12), corners=inside, min_side=4).image
        rel = f"images/{k:06d}.jpg"
        img.save(root / rel, quality=95)
        labels.append({"image": rel, "label": name})
    (root / "labels.json").write_text(json.dumps({"classes": NAMES, "items": labels}, indent=1))


@dataclass
class DataCommand:
    out: str = setting(REQUIRED, "output folder (pairs/, sets/, spec_heldout/, zeroshot/, summary.json)")
    size: int = setting(64, "image side in pixels")
    pretrain_shards: int = setting(8, "shards of pre-training pairs")
    finetune_shards: int = setting(4, "shards of fine-tuning pairs")
    pairs_per_shard: int = setting(2000, "pairs in each pair shard")
    set_shards: int = setting(8, "shards of training candidate sets")
    sets_per_subset: int = setting(400, "training sets per subset")
    heldout_per_subset: int = setting(100, "held-out SPEC sets per subset")
    zeroshot_per_class: int = setting(40, "zero-shot images per object class")


def check(args: DataCommand):
    for key in ("size", "pretrain_shards", "finetune_shards", "pairs_per_shard", "set_shards"):
        if getattr(args, key) < 1:
            raise ConfigError(f"invalid value {key}={getattr(args, key)}: must be >= 1")


def run(args: DataCommand):
    out = Path(args.out)
    for d in ("pairs", "sets"):
        (out / d).mkdir(parents=True, exist_ok=True)
    write_pairs(out / "pairs", "pretrain", args.pretrain_shards, args.pairs_per_shard, args.size,
                SEEDS["pretrain"])
    write_pairs(out / "pairs", "finetune", args.finetune_shards, args.pairs_per_shard, args.size,
                SEEDS["finetune"])
    train_sets, rej = make_sets(args.sets_per_subset, args.size, SEEDS["sets"])
    order = np.random.default_rng(0).permutation(len(train_sets))
    writers = [TarWriter(out / "sets" / f"sets-{s:06d}.tar") for s in range(args.set_shards)]
    for n, j in enumerate(order):
        write_set(writers[n % args.set_shards], f"{n:08d}", train_sets[j])
    for w in writers:
        w.close()
    held, rej_h = make_sets(args.heldout_per_subset, args.size, SEEDS["heldout"])
    write_spec(out / "spec_heldout", held)
    write_zeroshot(out / "zeroshot", args.zeroshot_per_class, args.size, SEEDS["zeroshot"])
    summary = {"pretrain_pairs": args.pretrain_shards * args.pairs_per_shard,
               "finetune_pairs": args.finetune_shards * args.pairs_per_shard,
               "train_sets": len(train_sets), "heldout_sets": len(held),
               "zeroshot_images": args.zeroshot_per_class * len(NAMES),
               "rejected_sets": rej + rej_h, "size": args.size,
               "shards": {"pretrain": args.pretrain_shards, "finetune": args.finetune_shards,
                          "sets": args.set_shards}}
    return write_summary(out, summary, mark_complete=True)


main = command(DataCommand, run, prog="hnclip-repro-data", doc=__doc__, run_dir="${out}", check=check)


if __name__ == "__main__":
    main()
