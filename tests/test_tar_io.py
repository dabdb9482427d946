"""hn_data.tar_io, the one tar module: what it writes tarfile reads back, data offsets match
tarfile's, a damaged local shard is an error naming it, a failed write leaves no shard, and
the key rule groups samples as webdataset does."""
import tarfile

import pytest

from hn_data.tar_io import DamagedShard, TarWriter, expand, local_entries, local_samples


def _write(path, members):
    with TarWriter(path) as w:
        for name, data in members:
            w.add(name, data)


def test_offsets_and_bytes_match_tarfile(tmp_path):
    path = tmp_path / "sub" / "a.tar"  # the writer makes the folder
    _write(path, [("k1.jpg", b"x" * 700), ("k1.txt", b"cap"), ("k2.0.png", b"y" * 10)])
    with tarfile.open(path) as t:
        want = [(m.name, m.offset_data, t.extractfile(m).read()) for m in t if m.isfile()]
    assert list(local_entries(path)) == want
    with open(path, "rb") as f:  # an offset is where the member's bytes are
        f.seek(want[0][1])
        assert f.read(700) == b"x" * 700


def test_samples_follow_webdataset_key_rule(tmp_path):
    _write(tmp_path / "a.tar", [("d/k1.jpg", b"1"), ("d/k1.TXT", b"c"), ("k2.0.png", b"2"),
                                ("k2.json", b"{}"), ("noext", b"?")])
    assert list(local_samples(tmp_path / "a.tar")) == [
        ("d/k1", {"jpg": b"1", "txt": b"c"}), ("k2", {"0.png": b"2", "json": b"{}"})]


def test_damaged_local_shard_names_the_file(tmp_path):
    path = tmp_path / "bad.tar"
    _write(path, [("a.txt", b"a"), ("b.txt", b"b")])
    data = bytearray(path.read_bytes())
    with tarfile.open(path) as t:
        second = [m for m in t][1].offset
    data[second + 148:second + 156] = b"0000000\0"  # a wrong checksum
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedShard, match="bad.tar"):
        list(local_samples(path))
    (tmp_path / "empty.tar").write_bytes(b"")
    with pytest.raises(DamagedShard, match="empty.tar"):
        list(local_samples(tmp_path / "empty.tar"))


def test_damage_can_be_skipped_and_counted_instead(tmp_path):
    # a crawl's training shards (the contamination check) skip a damaged member and read on
    path = tmp_path / "crawl.tar"
    _write(path, [("a.txt", b"a"), ("b.txt", b"b"), ("c.txt", b"c")])
    data = bytearray(path.read_bytes())
    with tarfile.open(path) as t:
        second = [m for m in t][1].offset
    data[second + 148:second + 156] = b"0000000\0"
    path.write_bytes(bytes(data))
    damaged = []
    names = [n for n, _, _ in local_entries(path, lambda: damaged.append(1))]
    assert names == ["a.txt", "c.txt"] and damaged == [1]
    from train.eval.contamination import index_training
    _, captions, counts = index_training([str(path)], radius=0)
    assert counts["unreadable"] == 1 and sorted(captions) == ["a", "c"]


def test_failed_write_leaves_no_shard(tmp_path):
    with pytest.raises(RuntimeError):
        with TarWriter(tmp_path / "s.tar") as w:
            w.add("a.txt", b"a")
            raise RuntimeError("generator failed")
    assert list(tmp_path.iterdir()) == []


def test_expand_lists_and_separators():
    assert expand("x/a-{0..2}.tar::x/b.tar") == ["x/a-0.tar", "x/a-1.tar", "x/a-2.tar", "x/b.tar"]
    assert expand(["a-{0..1}.tar", " b.tar "]) == ["a-0.tar", "a-1.tar", "b.tar"]


def test_an_evaluation_shard_with_a_damaged_header_is_an_error(tmp_path):
    # tarfile used to stop at the damage without a word: the benchmark silently shrank
    from train.eval.shards import read_samples
    path = tmp_path / "bench-0.tar"
    _write(path, [("a.txt", b"a"), ("b.txt", b"b")])
    data = bytearray(path.read_bytes())
    data[512 * 2 + 148:512 * 2 + 156] = b"0000000\0"  # the second member's header
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedShard, match="bench-0.tar"):
        read_samples(str(path), ("txt",))
