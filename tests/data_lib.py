"""Tiny shards for the data-pipeline tests (tests/test_data_*.py): every caption says which
source, shard and sample it came from, every image's colour says the same, so a test can
check exactly which samples a step holds."""
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hn_data.set_format import TarWriter, write_set_record


def jpg(color, size=8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), tuple(int(c) for c in color)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def pair_shards(folder, source="a", n_shards=4, per_shard=4):
    """-> list of shard paths; sample i of shard s has caption '<source> s<s> i<i>'."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(n_shards):
        path = folder / f"{source}-{s:06d}.tar"
        w = TarWriter(path)
        for i in range(per_shard):
            key = f"{s:05d}{i:04d}"
            w.add(f"{key}.jpg", jpg((40 * s % 256, 40 * i % 256, 128)))
            w.add(f"{key}.txt", f"{source} s{s} i{i}".encode())
            w.add(f"{key}.json", json.dumps({"key": key, "status": "success"}).encode())
        w.close()
        paths.append(str(path))
    return paths


def set_shards(folder, sizes, n_shards=2, n_captions_extra=0):
    """Candidate sets: set n has len(sizes[n]) images; image k is a solid colour encoding (n, k)
    and pairs with caption 'set<n> cap<k>'. -> shard paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writers = [TarWriter(folder / f"sets-{s:06d}.tar") for s in range(n_shards)]
    for n, k in enumerate(sizes):
        caps = [f"set{n} cap{j}" for j in range(k + n_captions_extra)]
        rec = {"subset": f"sub{n % 3}", "captions": caps, "image_caption": list(range(k)),
               "objects": [], "meta": {"n": n}}
        write_set_record(writers[n % n_shards], f"{n:08d}", rec,
                         [(jpg(set_color(n, j)), "jpg") for j in range(k)])
    for w in writers:
        w.close()
    return [str(folder / f"sets-{s:06d}.tar") for s in range(n_shards)]


def set_color(n, k):
    return (n * 37 % 256, k * 28, 200)


def tensor(img):
    return torch.from_numpy(np.asarray(img.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1) / 255


def noisy(img):
    """A 'random augmentation': draws from torch's global RNG like torchvision's crops do."""
    return tensor(img) + torch.rand(3, 8, 8)


def captions(tokens):
    """The tests' tokenizer is the identity, so a batch's 'tokens' are its caption strings."""
    return list(tokens)


def identity_tokenizer(texts):
    return list(texts)


def corrupt_header(path, member_name, which="first"):
    """Overwrite the checksum field of one member's header: tar readers must resync.
    which="first": the first header block of the member (its PAX extended header when it has
    one); "own": the member's own ustar header, the block just before its data."""
    with tarfile.open(path) as t:
        info = t.getmember(member_name)
    offset = info.offset if which == "first" else info.offset_data - tarfile.BLOCKSIZE
    with open(path, "r+b") as f:
        f.seek(offset + 148)  # chksum field
        f.write(b"999999\0 ")


def img2dataset_shard(path, n, caption="pair"):
    """A shard written the way img2dataset writes them: webdataset's TarWriter, whose float
    mtime puts a PAX extended header before every member. Sample i: KEY.jpg/.txt/.json,
    caption '<caption> i<i>'."""
    import webdataset as wds
    with wds.TarWriter(str(path)) as w:
        for i in range(n):
            key = f"{i:09d}"
            w.write({"__key__": key, "jpg": jpg((i * 9 % 256, 50, 90)), "txt": f"{caption} i{i}",
                     "json": json.dumps({"key": key, "status": "success"}).encode()})
    return str(path)


def truncate(path, keep_fraction=0.6):
    data = Path(path).read_bytes()
    cut = int(len(data) * keep_fraction) // 512 * 512 + 100  # mid-block, inside some member
    Path(path).write_bytes(data[:cut])
