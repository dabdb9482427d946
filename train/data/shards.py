"""Shard lists and their deterministic order per (rank, worker).

Epoch mode: every epoch permutes all shards with a seed-derived RNG, then rank r / worker w of
R ranks x W workers takes every (R*W)-th shard starting at r*W+w: disjoint and complete.
Resampled mode: each (rank, worker) draws shards with replacement, weighted by source, from
its own RNG seeded by (seed, rank, worker): endless and independent."""
import os
from typing import List, Sequence

import braceexpand
import numpy as np


class ShardError(RuntimeError):
    pass


def expand(urls: str) -> List[str]:
    """'a-{000..003}.tar::b.tar' -> list of shard URLs (webdataset's '::' separator)."""
    out = []
    for part in urls.split("::"):
        out.extend(braceexpand.braceexpand(part.strip()))
    return [u for u in out if u]


def check_local(urls: Sequence[str], skip_missing: bool) -> List[str]:
    """Fail fast on a missing local shard (pipe: and remote URLs are checked when opened)."""
    kept, missing = [], []
    for u in urls:
        local = not (u.startswith("pipe:") or "://" in u)
        if local and not os.path.isfile(u):
            missing.append(u)
        else:
            kept.append(u)
    if missing and not skip_missing:
        raise ShardError(f"{len(missing)} shard(s) not found, first: {missing[0]} "
                         f"(set data.skip_missing_shards=true to train without them)")
    if not kept:
        raise ShardError(f"no readable shards among {len(urls)} listed")
    return kept


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
