"""Throughput of the data engine: sets/s (and images/s) for the full write path - build, check
every mask, PNG-encode, tar - into a temporary folder that is deleted afterwards.

    python -m hn_data.bench_engine --sets-per-subset 50 --workers 1 --size 64"""
import argparse
import json
import tempfile
import time

from .engine import add_engine_args, config_from_args, read_sets, write_split


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets-per-subset", type=int, default=50)
    ap.add_argument("--shards", type=int, default=4)
    add_engine_args(ap)
    args = ap.parse_args(argv)
    cfg = config_from_args(args)
    n = args.sets_per_subset * len(cfg.subsets)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stats = write_split(cfg, "train", tmp, n, args.shards, args.workers, desc="bench")
        dt = time.perf_counter() - t0
        from pathlib import Path
        images = sum(len(cs.images) for p in Path(tmp).glob("sets-*.tar") for _, cs in read_sets(p))
    res = {"backend": cfg.backend, "size": cfg.size, "workers": args.workers, "sets": stats["sets"],
           "images": images, "rejected": stats["rejected"], "seconds": round(dt, 2),
           "sets_per_s": round(stats["sets"] / dt, 1), "images_per_s": round(images / dt, 1)}
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
