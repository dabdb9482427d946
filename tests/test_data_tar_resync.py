"""Damaged tar headers cost one member, not the rest of the shard: the block reader resyncs
on the next valid header, PAX extended headers (img2dataset writes one before every member)
included, and counts `corrupt_member`. On undamaged archives it reads what tarfile reads."""
import io
import tarfile
from collections import Counter

import pytest

from data_lib import corrupt_header, img2dataset_shard
from hn_data.tar_io import NotATar, Truncated, tar_members
from train.data.samples import raw_samples


def captions(samples):
    return [s["txt"].decode() for s in samples if "txt" in s and "jpg" in s]


def test_img2dataset_shard_with_damaged_headers_keeps_every_other_pair(tmp_path):
    path = img2dataset_shard(tmp_path / "00000.tar", 21)
    with tarfile.open(path) as t:  # the layout this test is about: PAX before every member
        assert all(m.pax_headers for m in t.getmembers())
    # (the later one first: corrupt_header finds members with tarfile, which stops at damage)
    corrupt_header(path, "000000012.txt", which="first")  # a PAX header: its member survives
    corrupt_header(path, "000000007.jpg", which="own")    # the member header after a PAX one
    counters = Counter()
    samples = list(raw_samples([path], counters))
    got = captions(samples)
    assert got == [f"pair i{i}" for i in range(21) if i != 7]
    # sample 7 keeps its .json and .txt but lost its image: the decoder counts it incomplete
    lost = [s for s in samples if s["__key__"] == "000000007"]
    assert len(lost) == 1 and "jpg" not in lost[0] and "txt" in lost[0]
    assert counters == Counter(corrupt_member=2)


def test_damage_at_the_end_and_truncation_are_counted_apart(tmp_path):
    path = img2dataset_shard(tmp_path / "00000.tar", 6)
    data = open(path, "rb").read()
    with tarfile.open(path) as t:
        cut = t.getmember("000000003.jpg").offset_data + 100  # inside sample 3's image
    corrupt_header(path, "000000005.txt", which="own")  # the last member
    counters = Counter()
    assert captions(raw_samples([path], counters)) == [f"pair i{i}" for i in range(5)]
    assert counters == Counter(corrupt_member=1)
    (tmp_path / "cut.tar").write_bytes(data[:cut])
    counters = Counter()
    assert captions(raw_samples([str(tmp_path / "cut.tar")], counters)) == [f"pair i{i}" for i in range(3)]
    assert counters == Counter(truncated_shard=1)


def _archive(fmt, names):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        d = tarfile.TarInfo("somedir")
        d.type = tarfile.DIRTYPE
        t.addfile(d)
        for i, name in enumerate(names):
            info = tarfile.TarInfo(name)
            payload = bytes([i % 251]) * (i * 700 + 1)
            info.size, info.mtime = len(payload), 1.5 + i  # float mtime: PAX records
            t.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_reads_what_tarfile_reads(fmt):
    names = ["a.jpg", "a.txt", "dir/" * 20 + "b.jpg", "x" * 99 + ".txt"]
    if fmt == tarfile.USTAR_FORMAT:  # ustar: a long path only fits via the prefix field
        names = names[:3]
    data = _archive(fmt, names)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        want = [(m.name, t.extractfile(m).read()) for m in t.getmembers() if m.isreg()]
    damage = []
    got = list(tar_members(io.BytesIO(data), lambda: damage.append(1)))
    assert got == want and not damage
    # two archives back to back (webdataset reads concatenated tars): both are read
    assert list(tar_members(io.BytesIO(data + data), lambda: damage.append(1))) == want + want


def test_unreadable_pax_record_skips_only_its_member():
    data = bytearray(_archive(tarfile.PAX_FORMAT, ["a.jpg", "b.jpg", "c.jpg"]))
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as t:
        pax_data = t.getmember("b.jpg").offset + 512  # its PAX header's record block
    data[pax_data:pax_data + 3] = b"zz "  # the length of the first record is no number
    damage = []
    got = [n for n, _ in tar_members(io.BytesIO(bytes(data)), lambda: damage.append(1))]
    assert got == ["a.jpg", "c.jpg"] and damage == [1]


def test_not_a_tar_and_truncated_are_errors_of_the_reader():
    with pytest.raises(NotATar):
        list(tar_members(io.BytesIO(b""), lambda: None))
    with pytest.raises(NotATar):
        list(tar_members(io.BytesIO(b"not a tar " * 100), lambda: None))
    data = _archive(tarfile.PAX_FORMAT, ["a.jpg", "b.jpg"])
    with pytest.raises(Truncated):
        list(tar_members(io.BytesIO(data[:2048 + 300]), lambda: None))
