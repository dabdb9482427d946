"""Tar shards: the one reader and the one writer of every shard the project reads or writes
(training pairs and candidate sets, engine output, evaluation webdatasets), the image
extensions a sample may carry, and brace-expanded shard lists.

The reader works block by block so that a damaged header costs one member, not the rest of
the shard. Python's tarfile cannot do this in stream mode: with `ignore_zeros` it skips a bad
plain header, but a bad header that follows a PAX extended header (img2dataset, through
webdataset's writer, puts one before every member: its float mtime does not fit the ustar
field) raises ReadError, and the caller can only drop the rest of the stream. Here every
512-byte block that is not a valid header (checksum, size field) is skipped until the next
valid one; each run of skipped blocks is reported once through `on_damage`.

Understood: ustar/GNU/PAX headers, PAX `path` and `size` records (per member and global),
GNU long names. Other member types (directories, links, ...) are skipped.

The training loader (train.data.samples) reads streams with `tar_members` and counts damage;
small local shards (engine output, evaluation sets) are read whole with `local_samples`, where
damage is an error naming the shard."""
import io
import re
import tarfile
from pathlib import Path
from typing import List

from braceexpand import braceexpand

BLOCK = 512
# the extensions under which a sample may carry its image, in the order they are looked for
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
_ZERO = bytes(BLOCK)
_REGULAR = (b"0", b"\0", b"7")


class NotATar(ValueError):
    """The stream is empty or its first block is not a tar header."""


class Truncated(EOFError):
    """The stream ended inside a header or a member's data."""


def _read(stream, n: int) -> bytes:
    """n bytes, fewer only at the end of the stream (pipes return short reads)."""
    parts, got = [], 0
    while got < n:
        b = stream.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def _number(field: bytes):
    """A numeric header field: octal text, or GNU base-256 when the top bit is set."""
    if field[0] & 0x80:
        if field[0] == 0xFF:  # negative base-256: never a valid size
            return None
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.replace(b"\0", b" ").strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def parse_header(block: bytes):
    """-> (name, size, type flag) of a valid header block, else None."""
    stored = _number(block[148:156])
    if stored is None:
        return None
    body = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(body)
    # some old writers sign the sum; counted only when needed (a per-byte loop in Python)
    if stored != unsigned and stored != unsigned - 256 * sum(1 for b in body if b > 127):
        return None
    size = _number(block[124:136])
    if size is None:
        return None
    name = _text(block[0:100])
    if block[257:262] == b"ustar":
        prefix = _text(block[345:500])
        if prefix:
            name = prefix + "/" + name
    return name, size, block[156:157]


def parse_pax(data: bytes) -> dict:
    """PAX records 'LEN key=value\\n' -> {key: value}; ValueError when malformed."""
    out, pos = {}, 0
    while pos < len(data):
        if data[pos] == 0:  # NUL padding after the last record
            break
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        record = data[space + 1:pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise ValueError("malformed PAX record")
        key, value = record[:-1].split(b"=", 1)
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def tar_members(stream, on_damage):
    """Yield (name, bytes) of each regular file. The first block must be a header (else
    NotATar); afterwards a block that is not one starts a resync and calls on_damage() once.
    Raises Truncated when the stream ends inside a header or a member."""
    for name, _, data in tar_entries(stream, on_damage):
        yield name, data


def tar_entries(stream, on_damage):
    """tar_members with each member's data offset in the stream: (name, offset, bytes)."""
    first, resyncing = True, False
    pos = 0  # bytes consumed so far: the offset of the next block
    pending, global_attrs = {}, {}  # PAX/GNU attributes of the next member, of all members
    while True:
        block = _read(stream, BLOCK)
        pos += len(block)
        if not block:
            if first:
                raise NotATar("empty file")
            return
        if len(block) < BLOCK:
            if first:
                raise NotATar("shorter than one tar block")
            raise Truncated("the stream ends inside a header")
        if block == _ZERO:  # end-of-archive marker or padding: concatenated tars go on after it
            first = False
            continue
        header = parse_header(block)
        if header is None:
            if first:
                raise NotATar("the first block is not a tar header")
            if not resyncing:
                on_damage()
                resyncing = True
                # the attributes that were read belong to the member whose header is lost
                pending = {}
            continue
        first, resyncing = False, False
        name, size, kind = header
        if kind in (b"x", b"g", b"L"):
            data = _payload(stream, size)
            pos += _padded(size)
            if kind == b"L":
                pending["path"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                continue
            try:
                attrs = parse_pax(data)
            except ValueError:
                # an extended header we cannot read may hold the next member's real name or
                # size: skip that member rather than trust its plain header
                on_damage()
                pending = {"skip": True}
                continue
            (global_attrs if kind == b"g" else pending).update(attrs)
            continue
        attrs = {**global_attrs, **pending}
        pending = {}
        if "size" in attrs:
            try:
                size = int(attrs["size"])
            except ValueError:
                size = -1
            if size < 0:
                on_damage()
                resyncing = True
                continue
        offset = pos
        data = _payload(stream, size)
        pos += _padded(size)
        if kind in _REGULAR and not attrs.get("skip"):
            yield attrs.get("path", name), offset, data


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _payload(stream, size: int) -> bytes:
    """A member's data, consuming its padding to the next block."""
    padded = _padded(size)
    data = _read(stream, padded)
    if len(data) < padded:
        raise Truncated("the stream ends inside a member")
    return data[:size]


class DamagedShard(ValueError):
    """A local shard that is not a tar, ends early or has a damaged member."""


# webdataset's key rule: the key is everything before the first dot of the base name,
# so "KEY.0.png" belongs to sample KEY with extension "0.png".
_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")


def split_key(name: str):
    """member name -> (sample key, lower-case extension), or None for a name without one."""
    m = _KEY_EXT.match(name)
    return None if m is None else (m.group(1), m.group(2).lower())


def group_samples(members, on_duplicate=None):
    """(name, bytes) members -> (key, {ext: bytes}) samples: consecutive members sharing a key
    form one sample (webdataset's grouping rule). Names without an extension are ignored; a
    repeated extension keeps the first member and calls on_duplicate()."""
    key, sample = None, None
    for name, data in members:
        kx = split_key(name)
        if kx is None:
            continue
        if sample is None or kx[0] != key:
            if sample is not None:
                yield key, sample
            key, sample = kx[0], {}
        if kx[1] in sample:
            if on_duplicate is not None:
                on_duplicate()
            continue
        sample[kx[1]] = data
    if sample is not None:
        yield key, sample


def local_entries(path, on_damage=None):
    """(name, data offset, bytes) of the regular files of a local shard. A damaged member
    header is a DamagedShard naming the file (a small local shard is read whole or not at all),
    or, given on_damage, reported through it and skipped (the reader resyncs after it). A file
    that is not a tar or ends early is always a DamagedShard."""
    def damaged():
        raise DamagedShard(f"shard {path} has a damaged member header")
    try:
        with open(path, "rb") as f:
            yield from tar_entries(f, on_damage or damaged)
    except (NotATar, Truncated) as e:
        raise DamagedShard(f"shard {path} cannot be read: {e}") from e


def local_samples(path, on_damage=None):
    """(key, {ext: bytes}) samples of a local shard, in the shard's order (damage: local_entries)."""
    return group_samples((name, data) for name, _, data in local_entries(path, on_damage))


def expand(urls) -> List[str]:
    """'a-{000..003}.tar::b.tar' (webdataset's '::' separator), or a list of such strings ->
    the list of shard URLs."""
    parts = urls if isinstance(urls, (list, tuple)) else str(urls).split("::")
    out = []
    for part in parts:
        out.extend(braceexpand(str(part).strip()))
    return [u for u in out if u]


def existing_files(paths, what="shard"):
    """The paths, after checking each is a file: a missing one is an error naming it."""
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"{what} {p} does not exist")
    return list(paths)


class TarWriter:
    """Writes tar members atomically: the shard appears under its name only when complete.
    Members get mtime 0, so that the same content gives the same bytes."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        self.tar = tarfile.open(self.tmp, "w")

    def add(self, name: str, data: bytes):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        self.tar.addfile(info, io.BytesIO(data))

    def close(self):
        self.tar.close()
        self.tmp.replace(self.path)

    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        if kind is None:
            self.close()
        else:  # a failed write leaves no shard under the final name
            self.tar.close()
            self.tmp.unlink(missing_ok=True)
