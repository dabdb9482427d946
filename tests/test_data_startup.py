"""Every listed local shard is opened once at start-up: a missing, zero-byte or non-tar shard
stops the run before its first step, naming the file; with data.skip_missing_shards=true the
run goes on without them, warns, and counts them (`missing_shard`, once a run, in the first
step's `skipped` on rank 0)."""
import re

import pytest
from omegaconf import OmegaConf

from data_lib import identity_tokenizer, pair_shards, set_shards, tensor
from train.data import shards as S
from train.data.steps import make_loader, spec_from_config


def config(pairs, sets, skip):
    return OmegaConf.create({"pairs": [{"urls": u, "weight": 1.0} for u in pairs],
                             "sets": [{"urls": u, "weight": 1.0} for u in sets],
                             "pairs_per_step": 4, "set_items_per_step": 4 if sets else 0,
                             "resampled": True, "shuffle_buffer": 4, "skip_missing_shards": skip,
                             "lookahead_sets": 4})


@pytest.mark.parametrize("damage,why", [("missing", "cannot be opened"), ("empty", "is empty"),
                                        ("garbage", "is not a tar file")])
def test_bad_shard_fails_at_start_naming_the_file(tmp_path, damage, why):
    urls = pair_shards(tmp_path, "a", n_shards=3, per_shard=4)
    bad = tmp_path / "a-000001.tar"
    if damage == "missing":
        bad.unlink()
    else:
        bad.write_bytes(b"" if damage == "empty" else b"<html>404 not found</html>" * 40)
    with pytest.raises(S.ShardError, match=re.escape(str(bad)) + ".*" + why) as e:
        spec_from_config(config([f"{tmp_path}/a-{{000000..000002}}.tar"], [], False), 0, 0, 1)
    assert "skip_missing_shards" in str(e.value)
    assert urls


def test_skipped_shards_are_warned_and_counted_once(tmp_path):
    pair_shards(tmp_path, "a", n_shards=3, per_shard=4)
    set_shards(tmp_path / "s", [2] * 8, n_shards=2)
    (tmp_path / "a-000001.tar").write_bytes(b"")
    cfg = config([f"{tmp_path}/a-{{000000..000003}}.tar"],       # 000001 empty, 000003 missing
                 [f"{tmp_path}/s/sets-{{000000..000002}}.tar"], True)  # 000002 missing
    with pytest.warns(UserWarning, match="training without 2 listed shard"):
        spec = spec_from_config(cfg, 0, 0, 1)
    assert spec.pairs.sources == [[f"{tmp_path}/a-000000.tar", f"{tmp_path}/a-000002.tar"]]
    it = iter(make_loader(spec, tensor, identity_tokenizer, 0))
    steps = [next(it) for _ in range(3)]
    assert steps[0]["skipped"].get("missing_shard") == 3
    assert not any("missing_shard" in st["skipped"] for st in steps[1:])
    # another rank reads the same list: counted by rank 0 only, so a sum over ranks is right
    spec1 = spec_from_config(cfg, 0, 1, 2)
    assert "missing_shard" not in next(iter(make_loader(spec1, tensor, identity_tokenizer, 0)))["skipped"]
    # a resumed run logged them already
    resumed = next(iter(make_loader(spec, tensor, identity_tokenizer, 0, start_step=3)))
    assert "missing_shard" not in resumed["skipped"]
