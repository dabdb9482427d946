"""Throughput of the data engine: sets/s (and images/s) for the full write path - build, check
every mask, PNG-encode, tar - into a temporary folder that is deleted afterwards.

    python -m hn_data.bench_engine sets_per_subset=50 workers=1 size=64"""
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .cli import command, setting
from .engine import EngineKeys, engine_config, read_sets, write_split


@dataclass
class BenchEngineCommand(EngineKeys):
    sets_per_subset: int = setting(50)
    shards: int = setting(4)


def bench(keys: BenchEngineCommand) -> dict:
    cfg = engine_config(keys)
    n = keys.sets_per_subset * len(cfg.subsets)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stats = write_split(cfg, "train", tmp, n, keys.shards, keys.workers, desc="bench")
        dt = time.perf_counter() - t0
        images = sum(len(cs.images) for p in Path(tmp).glob("sets-*.tar") for _, cs in read_sets(p))
    res = {"backend": cfg.backend, "size": cfg.size, "workers": keys.workers, "sets": stats["sets"],
           "images": images, "rejected": stats["rejected"], "seconds": round(dt, 2),
           "sets_per_s": round(stats["sets"] / dt, 1), "images_per_s": round(images / dt, 1)}
    print(json.dumps(res))
    return res


main = command(BenchEngineCommand, bench, prog="hnclip-bench-engine", doc=__doc__, check=engine_config)


if __name__ == "__main__":
    main()
