"""Held-out zero-shot and retrieval data for the embedded default, so a default run can watch
zero-shot retention beside the SPEC scores (the users' question: did fine-grained gains cost
zero-shot skill?).

    python -m train.eval.demo_data out=data/diag

Writes OUT/zeroshot/<class>/*.png (one procedural object on a background, the image-folder
layout) and OUT/retrieval/pairs-{00000..00001}.tar (img2dataset layout). Background seeds start
far above anything hn_data.make_default uses, so no image here is a training image."""
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hn_data.cli import ConfigError, command, setting
from hn_data.objects import CLASSES
from hn_data.scenes import names_caption, object_scene
from hn_data.tar_io import TarWriter

SEED_OFFSET = 3_000_000_000


def _corners(side, size):
    """Inside the image, as the demo data has always been drawn (its images stay the same)."""
    return 0, max(1, size - side)


def scene(rng, names, size, bg_seed):
    return object_scene(rng, names, size, bg_seed, area=(0.06, 0.3), corners=_corners).image


@dataclass
class DemoDataCommand:
    out: str = setting("data/diag", "output folder (the run directory)")
    size: int = setting(64, "image side in pixels")
    per_class: int = setting(12, "zero-shot images per class")
    pairs: int = setting(200, "retrieval pairs (over two shards)")
    seed: int = setting(0)


def check(args: DemoDataCommand):
    for name in ("size", "per_class", "pairs"):
        if getattr(args, name) < 1:
            raise ConfigError(f"invalid value {name}={getattr(args, name)}: must be >= 1")


def write(args: DemoDataCommand):
    out, rng, classes = Path(args.out), np.random.default_rng(args.seed + 17), list(CLASSES)
    bg = SEED_OFFSET
    for c in classes:
        (out / "zeroshot" / c).mkdir(parents=True, exist_ok=True)
        for i in range(args.per_class):
            bg += 1
            scene(rng, [c], args.size, bg).save(out / "zeroshot" / c / f"{i:03d}.png")
    (out / "retrieval").mkdir(parents=True, exist_ok=True)
    per_shard = (args.pairs + 1) // 2
    for s in range(2):
        with TarWriter(out / "retrieval" / f"pairs-{s:05d}.tar") as tar:
            for i in range(per_shard):
                bg += 1
                names = [classes[j] for j in rng.choice(len(classes), int(rng.integers(1, 3)), replace=False)]
                buf = io.BytesIO()
                scene(rng, names, args.size, bg).save(buf, format="JPEG", quality=95)
                cap = names_caption(names)
                key = f"{s:05d}{i:04d}"
                for ext, data in (("jpg", buf.getvalue()), ("txt", cap.encode()),
                                  ("json",
                                   json.dumps({"key": key, "caption": cap, "status": "success"}).encode())):
                    tar.add(f"{key}.{ext}", data)
    print(f"wrote {len(classes)} x {args.per_class} zero-shot images and {2 * per_shard} pairs under {out}")
    return out


main = command(DemoDataCommand, write, prog="hnclip-demo-data", doc=__doc__, run_dir="${out}", check=check)


if __name__ == "__main__":
    main()
