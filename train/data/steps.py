"""The mixer: the one place that zips the pair stream and the candidate-set stream into steps
{pairs, sets} with fixed counts per rank, so the loss scale is the same at every step.

Each DataLoader worker builds both streams from its own seed-derived RNGs and yields whole
steps; the DataLoader interleaves workers round-robin, so step s comes from worker s % W
(a resumed loader rotates worker roles so that its first step is step start_step). That makes
the data position a single number (steps consumed): on resume, worker w replays
its stream past the steps it had already produced and continues exactly where it stopped.
Replaying re-derives every RNG state (shard choice, shuffle buffer, set trimming) instead of
storing it, so it is exact in epoch and resampled mode alike; it stays cheap because replayed
steps are never preprocessed, tokenized or (for sets) decoded: only the tar bytes are read and
pair images decoded, since whether an image decodes decides which samples a step holds.
A resume must keep the data config, seed, world size and data.workers of the original run."""
import functools
import os
import random
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import List

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..text_trim import caption_lengths, text_len_of
from . import shards as S
from .decode import MAX_IMAGE_PIXELS, check_pair, decode_pair, decode_set, jpeg_route, set_sizes
from .samples import raw_samples, shuffled
from .set_batcher import collate_sets, plan_steps


@dataclass
class StreamSpec:
    sources: List[List[str]]           # shard URLs per source
    weights: List[float]
    resampled: bool = True
    shuffle_buffer: int = 256
    skip_missing: bool = False
    max_image_pixels: int = MAX_IMAGE_PIXELS  # a bigger image (read from its header) is skipped
    missing_shards: int = 0            # listed shards left out at start-up (skip_missing)


@dataclass
class StepSpec:
    pairs: StreamSpec
    sets: StreamSpec = None
    pairs_per_step: int = 64
    set_items_per_step: int = 0
    lookahead_sets: int = 32
    seed: int = 0
    rank: int = 0
    world: int = 1


def sample_stream(spec: StreamSpec, seed, stream_id, rank, world, worker, workers, counters, rng):
    """Raw samples of one (rank, worker), shuffled through a buffer driven by `rng`."""
    strict = not spec.skip_missing
    if spec.resampled:
        urls = S.resampled_shards(spec.sources, spec.weights, seed + 7919 * stream_id, rank, worker)
        yield from shuffled(raw_samples(urls, counters, strict), spec.shuffle_buffer, rng)
        return
    # epoch mode: weights are ignored, every shard of every source once per epoch, and the
    # shuffle buffer drains at the end of each epoch so epochs never mix
    flat = [u for src in spec.sources for u in src]
    epoch = 0
    while True:
        urls = S.epoch_shards(flat, seed + 7919 * stream_id, epoch, rank, world, worker, workers)
        yield from shuffled(raw_samples(urls, counters, strict), spec.shuffle_buffer, rng)
        epoch += 1


@contextmanager
def step_rng(seed: int, rank: int, step: int):
    """Seed torch's CPU generator and `random` (what torchvision's random crops draw from)
    from (seed, rank, step) for the duration of one step, then restore them, so that with
    data.workers=0 the trainer's own RNG stream is left untouched."""
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    s = int(np.random.SeedSequence([seed, 5, rank, step]).generate_state(1, np.uint64)[0])
    torch.default_generator.manual_seed(s)
    random.seed(s)
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        random.setstate(py_state)


class StepStream(IterableDataset):
    def __init__(self, spec: StepSpec, preprocess, tokenizer, start_step: int = 0):
        self.spec, self.preprocess, self.tokenizer, self.start_step = spec, preprocess, tokenizer, start_step

    def _pair_batches(self, worker, workers, counters, replay: int):
        """Batches of exactly pairs_per_step pairs. The first `replay` batches (already
        trained on before a resume) are yielded as None: their samples are read and checked
        (so the same ones are skipped) but never preprocessed or tokenized."""
        sp = self.spec
        rng = S.rng_for(sp.seed, 3, sp.rank, worker)
        raw = sample_stream(sp.pairs, sp.seed, 0, sp.rank, sp.world, worker, workers, counters, rng)
        images, captions, n_ok = [], [], 0
        route = jpeg_route(self.preprocess)  # the same checks as the run being replayed
        for sample in raw:
            if replay > 0:
                if check_pair(sample, counters, sp.pairs.max_image_pixels, route) is not None:
                    n_ok += 1
                    if n_ok == sp.pairs_per_step:
                        n_ok, replay = 0, replay - 1
                        yield None
                continue
            out = decode_pair(sample, self.preprocess, counters, sp.pairs.max_image_pixels)
            if out is None:
                continue
            images.append(out[0])
            captions.append(out[1])
            if len(images) == sp.pairs_per_step:
                tokens = self.tokenizer(captions)
                # text_len: the longest caption's length, known here so the step reads nothing back
                # data.decode=cuda: DeferredImages, decoded by the training process (a list)
                yield {"images": images if route == "defer" else torch.stack(images), "tokens": tokens,
                       "text_len": text_len_of(tokens),
                       "text_lens": caption_lengths(tokens)}
                images, captions = [], []

    def _set_batches(self, worker, workers, counters, replay: int):
        """Packed candidate sets; the packer sees only parsed records (image counts), and the
        pixels of a step's sets are decoded when the step is emitted (never when replayed)."""
        sp = self.spec
        rng = S.rng_for(sp.seed, 4, sp.rank, worker)
        raw = sample_stream(sp.sets, sp.seed, 1, sp.rank, sp.world, worker, workers, counters, rng)
        parsed = set_sizes(raw, counters, sp.sets.max_image_pixels)
        for plan in plan_steps(parsed, sp.set_items_per_step, sp.lookahead_sets, rng, counters,
                               size=lambda p: p[1]):
            if replay > 0:
                replay -= 1
                yield None
                continue
            sets = [decode_set(sample, self.preprocess, keep, sp.sets.max_image_pixels)
                    for (sample, _), keep in plan]
            yield collate_sets(sets, self.tokenizer)

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        # The DataLoader asks its worker 0 first; step start_step belongs to the stream of
        # worker start_step % W, so the workers of a resumed loader take rotated roles.
        worker = (worker + self.start_step) % workers
        counters = Counter()
        # steps this worker produced before the resume point (round-robin assignment)
        done = max(0, (self.start_step - worker + workers - 1) // workers)
        pairs = self._pair_batches(worker, workers, counters, done)
        sets = (self._set_batches(worker, workers, counters, done)
                if self.spec.set_items_per_step > 0 else None)
        for _ in range(done):  # the skips counted here were logged by the run that trained on them
            next(pairs)
            if sets is not None:
                next(sets)
        sent = Counter(counters)
        index = self.start_step + ((worker - self.start_step) % workers)  # this worker's next step
        if index == 0 and self.spec.rank == 0:  # the shards left out at start-up, counted once a run
            counters["missing_shard"] += self.spec.pairs.missing_shards + (
                self.spec.sets.missing_shards if self.spec.sets is not None else 0)
        while True:
            # preprocessing happens lazily inside next(), so the augmentation RNG of this step
            # is seeded here: a replayed stream gets the same crops as the original run
            with step_rng(self.spec.seed, self.spec.rank, index):
                step = {"pairs": next(pairs)}
                if sets is not None:
                    step["sets"] = next(sets)
            step["skipped"] = dict(counters - sent)  # counts since the previous step
            sent = Counter(counters)
            index += workers
            yield step


def make_loader(spec: StepSpec, preprocess, tokenizer, workers: int, start_step: int = 0,
                worker_nice: int = 0):
    ds = StepStream(spec, preprocess, tokenizer, start_step)
    return DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=False,
                      prefetch_factor=4 if workers else None, pin_memory=False,
                      worker_init_fn=functools.partial(start_worker, nice=worker_nice))


def start_worker(worker_id, nice: int = 0):
    """DataLoader worker_init_fn: a job-wide SIGTERM/USR1 is the trainer's to handle, and the
    worker yields the CPU to the step by `nice` (data.worker_nice)."""
    from ..signals import ignore_in_worker
    ignore_in_worker(worker_id)
    if nice:
        os.nice(nice)


def spec_from_config(data_cfg, seed: int, rank: int, world: int) -> StepSpec:
    if not data_cfg.resampled:
        for name in ("pairs", "sets"):
            if len({s.weight for s in data_cfg[name]}) > 1:
                warnings.warn(f"data.{name}: source weights are ignored in epoch mode "
                              f"(data.resampled=false reads every shard once per epoch)", stacklevel=2)
    def stream(sources):
        checked = [S.check_local(S.expand(s.urls), data_cfg.skip_missing_shards) for s in sources]
        left_out = [b for _, bad in checked for b in bad]
        if left_out and rank == 0:
            warnings.warn(f"data.skip_missing_shards: training without {len(left_out)} listed "
                          f"shard(s), e.g. {left_out[0][0]} {left_out[0][1]}", stacklevel=2)
        return StreamSpec([kept for kept, _ in checked], [s.weight for s in sources], data_cfg.resampled,
                          data_cfg.shuffle_buffer, data_cfg.skip_missing_shards,
                          data_cfg.get("max_image_pixels", MAX_IMAGE_PIXELS), len(left_out))
    if not data_cfg.pairs:
        raise ValueError("data.pairs lists no pair source")
    sets = stream(data_cfg.sets) if data_cfg.sets and data_cfg.set_items_per_step > 0 else None
    return StepSpec(pairs=stream(data_cfg.pairs), sets=sets,
                    pairs_per_step=data_cfg.pairs_per_step,
                    set_items_per_step=data_cfg.set_items_per_step if sets else 0,
                    lookahead_sets=data_cfg.lookahead_sets, seed=seed, rank=rank, world=world)
