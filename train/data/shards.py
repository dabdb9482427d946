"""Shard lists and their deterministic order per (rank, worker).

Epoch mode: every epoch permutes all shards with a seed-derived RNG, then rank r / worker w of
R ranks x W workers takes every (R*W)-th shard starting at r*W+w: disjoint and complete.
Resampled mode: each (rank, worker) draws shards with replacement, weighted by source, from
its own RNG seeded by (seed, rank, worker): endless and independent."""
from typing import List, Sequence

import numpy as np

from hn_data.tar_io import BLOCK, expand, parse_header  # noqa: F401 (expand: the shard lists' rule)


class ShardError(RuntimeError):
    pass


def probe(url: str):
    """Why a local shard cannot be trained on (missing, empty, not a tar), else None. Reads
    one block: at start-up, so that such a shard fails the run before its first step instead
    of mid-run when a worker first reaches it."""
    try:
        with open(url, "rb") as f:
            block = f.read(BLOCK)
    except OSError as e:
        return f"cannot be opened ({e.strerror or e})"
    if not block:
        return "is empty (0 bytes)"
    if len(block) < BLOCK or (block != bytes(BLOCK) and parse_header(block) is None):
        return "is not a tar file (its first header does not parse)"
    return None


def check_local(urls: Sequence[str], skip_missing: bool):
    """-> (shards to read, [(url, why)] left out). Every local shard is probed once; pipe: and
    remote URLs are not (that would run a download per shard) and fail when first read."""
    kept, bad = [], []
    for u in urls:
        local = not (u.startswith("pipe:") or "://" in u)
        why = probe(u) if local else None
        if why is None:
            kept.append(u)
        else:
            bad.append((u, why))
    if bad and not skip_missing:
        raise ShardError(f"{len(bad)} shard(s) cannot be read, first: {bad[0][0]} {bad[0][1]} "
                         f"(set data.skip_missing_shards=true to train without them)")
    if not kept:
        raise ShardError(f"no readable shards among {len(urls)} listed")
    return kept, bad


def rng_for(seed: int, *path: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *path]))


def epoch_shards(urls: Sequence[str], seed: int, epoch: int, rank: int, world: int,
                 worker: int, workers: int) -> List[str]:
    slots = world * workers
    if len(urls) < slots:
        raise ShardError(f"epoch mode needs at least one shard per rank x worker ({slots}), "
                         f"got {len(urls)} shards: use more shards, fewer workers, or resampled mode")
    order = rng_for(seed, 1, epoch).permutation(len(urls))
    return [urls[i] for i in order[rank * workers + worker::slots]]


def resampled_shards(sources: Sequence[Sequence[str]], weights: Sequence[float], seed: int,
                     rank: int, worker: int):
    """Endless generator of shard URLs: pick a source by weight, then a shard uniformly."""
    rng = rng_for(seed, 2, rank, worker)
    p = np.asarray(weights, dtype=float)
    p = p / p.sum()
    while True:
        s = int(rng.choice(len(sources), p=p))
        yield sources[s][int(rng.integers(len(sources[s])))]
