"""Exact resume of the data order: a fresh loader told start_step=k yields exactly the steps
k.. of an uninterrupted loader (pixels, captions, packed sets, per-step augmentation), in
epoch and resampled mode, with 0 and 2 workers; and the replay of steps 0..k-1 does no
preprocessing or tokenization."""
import pytest
import torch

from data_lib import identity_tokenizer, noisy, pair_shards, set_shards
from train.data.steps import StepSpec, StreamSpec, make_loader

SIZES = [2, 3, 4, 9, 5, 3, 2, 7, 3, 4, 6, 2, 8, 3, 5, 4] * 2  # do not tile 6 exactly: trimming


def spec(tmp_path, resampled):
    pairs = pair_shards(tmp_path / "p", "a", n_shards=4, per_shard=6)
    sets = set_shards(tmp_path / "s", SIZES, n_shards=4)
    return StepSpec(StreamSpec([pairs], [1.0], resampled, 5), StreamSpec([sets], [1.0], resampled, 4),
                    pairs_per_step=4, set_items_per_step=6, lookahead_sets=3, seed=3)


def take(spec, n, workers, start=0):
    it = iter(make_loader(spec, noisy, identity_tokenizer, workers, start))
    return [next(it) for _ in range(n)]


def same(a, b):
    assert a["pairs"]["tokens"] == b["pairs"]["tokens"]
    assert torch.equal(a["pairs"]["images"], b["pairs"]["images"])  # same crops: augmentation RNG too
    for k, v in a["sets"].items():
        assert (torch.equal(v, b["sets"][k]) if torch.is_tensor(v) else v == b["sets"][k]), k


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("resampled", [False, True])
def test_resume_reproduces_the_uninterrupted_stream(tmp_path, workers, resampled):
    sp = spec(tmp_path, resampled)
    k, m = 7, 5  # k odd: with 2 workers the resume point falls mid-round
    full = take(sp, k + m, workers)
    resumed = take(sp, m, workers, start=k)
    for a, b in zip(full[k:], resumed):
        same(a, b)
    # and the resume point matters: starting elsewhere gives other steps
    assert take(sp, 1, workers, start=k + 1)[0]["pairs"]["tokens"] != full[k]["pairs"]["tokens"]


def test_replay_does_not_preprocess_or_tokenize(tmp_path):
    sp = spec(tmp_path, True)
    calls = {"pre": 0, "tok": 0}

    def pre(img):
        calls["pre"] += 1
        return noisy(img)

    def tok(texts):
        calls["tok"] += 1
        return list(texts)

    it = iter(make_loader(sp, pre, tok, 0, start_step=50))
    next(it)
    # exactly one step's worth: 4 pair images + 6 set images, one pair batch + one set batch
    assert calls == {"pre": 4 + 6, "tok": 2}, calls
