"""The pair stream: brace expansion, sources and weights, epoch/resampled modes, disjoint
rank x worker splits, determinism by seed, pipe: URLs, and bad input skipped-and-counted or a
clear error. Captions encode '<source> s<shard> i<sample>' (see data_lib.py)."""
import re
from collections import Counter

import pytest
from omegaconf import OmegaConf

from data_lib import corrupt_header, identity_tokenizer, jpg, pair_shards, tensor, truncate
from hn_data.set_format import TarWriter
from train.data import shards as S
from train.data.samples import ShardReadError
from train.data.steps import StepSpec, StreamSpec, make_loader, spec_from_config


def run(spec, steps, workers=0, start_step=0):
    it = iter(make_loader(spec, tensor, identity_tokenizer, workers, start_step))
    return [next(it) for _ in range(steps)]


def caps(steps):
    return [c for st in steps for c in st["pairs"]["tokens"]]


def spec_of(sources, weights=None, resampled=True, per_step=4, buffer=8, seed=0, rank=0, world=1,
            skip=False):
    return StepSpec(StreamSpec(sources, weights or [1.0] * len(sources), resampled, buffer, skip),
                    pairs_per_step=per_step, seed=seed, rank=rank, world=world)


def test_brace_expansion_and_sources():
    assert S.expand("x/a-{000..003}.tar::x/b.tar") == [f"x/a-{i:03d}.tar" for i in range(4)] + ["x/b.tar"]
    assert S.expand("pipe:cat s-{0..1}.tar") == ["pipe:cat s-0.tar", "pipe:cat s-1.tar"]


def test_epoch_mode_disjoint_and_complete_per_rank_and_worker(tmp_path):
    # 8 shards x 4 samples; 2 ranks x 2 workers -> 2 shards = 2 steps of 4 per worker per epoch
    urls = pair_shards(tmp_path, "a", n_shards=8, per_shard=4)
    everything = {f"a s{s} i{i}" for s in range(8) for i in range(4)}
    for epoch in range(2):
        seen = []
        for rank in range(2):
            steps = run(spec_of([urls], resampled=False, rank=rank, world=2), 4 * (epoch + 1), workers=2)
            steps = steps[4 * epoch:]
            per_worker = [caps(steps[w::2]) for w in range(2)]  # step s comes from worker s % 2
            shards_of = [{c.split()[1] for c in p} for p in per_worker]
            assert all(len(s) == 2 for s in shards_of), shards_of  # whole shards per worker
            assert not shards_of[0] & shards_of[1]
            seen += per_worker[0] + per_worker[1]
        assert len(seen) == len(set(seen)) == 32 and set(seen) == everything, epoch


def test_resampled_weights_within_tolerance(tmp_path):
    a = pair_shards(tmp_path / "a", "a", n_shards=4, per_shard=4)
    b = pair_shards(tmp_path / "b", "b", n_shards=4, per_shard=4)
    # the shard picker alone, many draws: source share and uniform shards within a source
    gen = S.resampled_shards([a, b], [3.0, 1.0], seed=0, rank=0, worker=0)
    draws = Counter(next(gen) for _ in range(20000))
    share_a = sum(v for k, v in draws.items() if k in a) / 20000
    assert abs(share_a - 0.75) < 0.015, share_a
    assert max(draws[u] for u in a) / min(draws[u] for u in a) < 1.15
    # the whole stream: 1200 samples ~ 300 shard draws -> sd of the share ~0.025
    got = caps(run(spec_of([a, b], [3.0, 1.0]), 150))
    share = sum(c.startswith("a ") for c in got) / len(got)
    assert abs(share - 0.75) < 0.08, share
    got = caps(run(spec_of([a, b], [1.0, 1.0]), 150))
    assert abs(sum(c.startswith("a ") for c in got) / len(got) - 0.5) < 0.08


def test_determinism_by_seed_and_worker_streams_differ(tmp_path):
    urls = pair_shards(tmp_path, "a", n_shards=4, per_shard=4)
    one = caps(run(spec_of([urls], seed=1), 12))
    assert one == caps(run(spec_of([urls], seed=1), 12))
    assert one != caps(run(spec_of([urls], seed=2), 12))
    # two workers: each has its own RNG stream, so consecutive steps are not copies
    two = run(spec_of([urls], seed=1), 6, workers=2)
    assert two[0]["pairs"]["tokens"] != two[1]["pairs"]["tokens"]
    # and a rank draws differently from another rank
    assert one != caps(run(spec_of([urls], seed=1, rank=1, world=2), 12))


def test_pipe_urls_read_like_local_paths(tmp_path):
    urls = pair_shards(tmp_path, "a", n_shards=4, per_shard=4)
    piped = [f"pipe:cat {u}" for u in urls]
    local = run(spec_of([urls], resampled=False), 4)
    remote = run(spec_of([piped], resampled=False), 4)
    assert caps(local) == caps(remote) and len(set(caps(local))) == 16


def _bad_shards(tmp_path):
    """Two shards of 6 samples with known damage; returns (urls, good captions, expected counts)."""
    good = pair_shards(tmp_path, "g", n_shards=2, per_shard=6)
    w = TarWriter(tmp_path / "bad-000000.tar")
    w.add("000.jpg", jpg((1, 2, 3)))
    w.add("000.txt", b"bad ok0")
    w.add("001.jpg", b"\xff\xd8 this is not a jpeg")
    w.add("001.txt", b"bad undecodable")
    w.add("002.jpg", jpg((4, 5, 6)))
    w.add("002.txt", b"   ")
    w.add("003.jpg", jpg((7, 8, 9)))  # no caption member
    w.add("004.jpg", jpg((1, 1, 1)))
    w.add("004.txt", b"bad lost its jpg header")
    w.add("005.jpg", jpg((2, 2, 2)))
    w.add("005.txt", b"bad ok5")
    w.close()
    corrupt_header(tmp_path / "bad-000000.tar", "004.jpg")
    truncate(good[1], 0.6)  # the second good shard loses its tail mid-member
    urls = [good[0], good[1], str(tmp_path / "bad-000000.tar")]
    return urls


def test_corrupt_members_undecodable_images_and_empty_captions_are_skipped_and_counted(tmp_path):
    urls = _bad_shards(tmp_path)
    # epoch mode, no shuffle, 1 sample per step: every readable sample appears once per epoch.
    # Readable: 6 of g0, the head of the truncated g1, 'bad ok0' and 'bad ok5'.
    head = caps(run(spec_of([[urls[1]]], resampled=False, per_step=1, buffer=1), 1))
    assert head == ["g s1 i0"]
    good = {f"g s0 i{i}" for i in range(6)} | {"bad ok0", "bad ok5"}
    steps = run(spec_of([urls], resampled=False, per_step=1, buffer=1), 40)
    got = caps(steps)
    n_g1 = len({c for c in got if c.startswith("g s1")})
    assert 0 < n_g1 < 6  # the truncated shard gives its head only
    per_epoch = len(good) + n_g1
    # step 2*per_epoch + 1 is the first of epoch 3, whose first sample is good in every shard,
    # so the counts up to it are exactly two epochs' worth
    window = steps[:2 * per_epoch + 1]
    two = Counter(caps(steps[:2 * per_epoch]))
    assert set(two) == good | {f"g s1 i{i}" for i in range(n_g1)}
    assert set(two.values()) == {2}  # nothing skipped, nothing repeated within an epoch
    skipped = Counter()
    for st in window:
        skipped.update(st["skipped"])
    assert skipped == Counter(undecodable_image=2, empty_caption=2, corrupt_member=2,
                              incomplete_sample=4,  # 003 has no caption, 004 lost its jpg header
                              truncated_shard=2), skipped


def test_missing_shard_is_an_error_unless_skipping(tmp_path):
    urls = pair_shards(tmp_path, "a", n_shards=2, per_shard=4)
    cfg = OmegaConf.create({"pairs": [{"urls": f"{tmp_path}/a-{{000000..000002}}.tar", "weight": 1.0}],
                            "sets": [], "pairs_per_step": 4, "set_items_per_step": 0, "resampled": True,
                            "shuffle_buffer": 8, "skip_missing_shards": False, "lookahead_sets": 4})
    with pytest.raises(S.ShardError, match=re.escape("a-000002.tar")) as e:
        spec_from_config(cfg, 0, 0, 1)
    assert "skip_missing_shards" in str(e.value)
    cfg.skip_missing_shards = True
    spec = spec_from_config(cfg, 0, 0, 1)
    assert spec.pairs.sources == [urls]
    assert len(caps(run(spec, 2))) == 8


@pytest.mark.parametrize("kind", ["garbage", "empty", "pipe_fails"])
def test_unreadable_shard_is_a_clear_error_or_counted(tmp_path, kind):
    urls = pair_shards(tmp_path, "a", n_shards=2, per_shard=4)
    bad = tmp_path / "bad.tar"
    if kind == "garbage":
        bad.write_bytes(b"this is not a tar file" * 100)
        url = str(bad)
    elif kind == "empty":
        bad.write_bytes(b"")
        url = str(bad)
    else:
        url = f"pipe:cat {tmp_path}/does-not-exist.tar"
    with pytest.raises(ShardReadError, match=re.escape(url)):
        run(spec_of([[url] + urls], resampled=False, per_step=4, buffer=1), 3)
    steps = run(spec_of([[url] + urls], resampled=False, per_step=4, buffer=1, skip=True), 4)
    assert sum(st["skipped"].get("unreadable_shard", 0) for st in steps) >= 1
    assert set(caps(steps)) == {f"a s{s} i{i}" for s in range(2) for i in range(4)}


def test_all_shards_unreadable_stops_instead_of_spinning(tmp_path, monkeypatch):
    from train.data import samples
    monkeypatch.setattr(samples, "MAX_BARREN_SHARDS", 20)
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"x" * 1000)
    with pytest.raises(ShardReadError, match="no sample in the last 20 shards"):
        run(spec_of([[str(bad)]], skip=True), 1)
