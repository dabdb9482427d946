"""What the three converters into the candidate-set format share: a sink that writes sets
into numbered shards, JSON readers that know each record's line number, image loading
that keeps the source bytes, and the command around a conversion. Every error names the input
file and line."""
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from PIL import Image

from .cli import ConfigError, command, setting
from .set_format import TarWriter, validate_record, write_set_record

KEEP_EXTS = {".jpg": "jpg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp"}


class ConvertError(ValueError):
    pass


@dataclass
class ConvertKeys:
    """The keys every converter command has."""
    out: str = setting(help="output folder for sets-NNNNNN.tar + manifest.json (the run directory)")
    sets_per_shard: int = setting(256)
    check_images: bool = setting(True, "decode every image once while converting")
    allow_outside_root: bool = setting(False, "read image paths that are absolute or climb out of the root")


def check_convert_keys(keys: ConvertKeys):
    if keys.sets_per_shard < 1:
        raise ConfigError(f"invalid value sets_per_shard={keys.sets_per_shard}: must be >= 1")


def converter_command(schema, convert: Callable, *, name: str, prog: str, doc: str,
                      note: Optional[Callable] = None):
    """-> main(argv=None) of a converter command whose keys are `schema` (a ConvertKeys) and
    which writes one folder, `out`. convert(keys) converts and returns the manifest; a
    ConvertError ends the command with its message (which names the file and line) behind
    `name`, a finished conversion prints what it wrote, then note(manifest) when given."""
    def run(keys):
        try:
            manifest = convert(keys)
        except ConvertError as e:
            raise SystemExit(f"{name}: {e}") from None
        print(f"wrote {manifest['sets']} sets ({manifest['images']} images) in {len(manifest['shards'])} "
              f"shards: {manifest['urls']}" + (note(manifest) if note else ""))
        return manifest

    return command(schema, run, prog=prog, doc=doc, run_dir="${out}", check=check_convert_keys)


def at(path, line) -> str:
    return f"{path}:{line}" if line else str(path)


class ShardSink:
    """Writes sets to OUT/PREFIX-000000.tar, ... (sets_per_shard each) and a manifest.json."""

    def __init__(self, out, prefix="sets", sets_per_shard=256, source=""):
        self.out, self.prefix, self.per_shard, self.source = Path(out), prefix, sets_per_shard, source
        self.out.mkdir(parents=True, exist_ok=True)
        self.writer, self.shards, self.n_sets, self.n_images = None, [], 0, 0
        self.subsets = {}

    def add(self, rec: dict, images, where: str):
        try:
            validate_record(rec, len(images), where)
        except ValueError as e:
            raise ConvertError(str(e)) from None
        if self.n_sets % self.per_shard == 0:
            self._rotate()
        write_set_record(self.writer, f"{self.n_sets:08d}", rec, images)
        self.n_sets += 1
        self.n_images += len(images)
        self.subsets[rec.get("subset", "")] = self.subsets.get(rec.get("subset", ""), 0) + 1

    def _rotate(self):
        if self.writer is not None:
            self.writer.close()
        path = self.out / f"{self.prefix}-{len(self.shards):06d}.tar"
        self.writer = TarWriter(path)
        self.shards.append(path.name)

    def close(self) -> dict:
        if self.writer is not None:
            self.writer.close()
        if not self.shards:
            raise ConvertError(f"{self.source}: no set to write")
        last = len(self.shards) - 1
        manifest = {"source": str(self.source), "sets": self.n_sets, "images": self.n_images,
                    "shards": self.shards, "subsets": self.subsets,
                    "urls": str(self.out / f"{self.prefix}-{{{0:06d}..{last:06d}}}.tar")}
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
        return manifest


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def json_array_records(path):
    """Yield (line, record) for each element of a top-level JSON list."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConvertError(f"{path}: cannot read ({e})") from None
    dec = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos >= len(text) or text[pos] != "[":
        raise ConvertError(f"{at(path, line_of(text, pos))}: expected a JSON list of records")
    pos = _skip_ws(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        try:
            rec, end = dec.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise ConvertError(f"{at(path, e.lineno)}: invalid JSON ({e.msg})") from None
        yield line_of(text, pos), rec
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            return
        raise ConvertError(f"{at(path, line_of(text, pos))}: invalid JSON (expected ',' or ']')")


def _skip_ws(text, pos):
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def jsonl_records(path):
    """Yield (line, record) for each non-blank line of a JSON-lines file."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                raise ConvertError(f"{at(path, n)}: invalid JSON ({e.msg})") from None


def inside(root, base, rel: str, where: str, allow_outside: bool = False) -> Path:
    """base / rel, the path of an image a benchmark file names. Refused, naming the file and
    the path, when it leaves root (absolute, or '..' climbing out): the file is data someone
    handed us, and must not make a converter read files elsewhere on the machine and copy them
    into shards. Checked on the path as written, not through symlinks, so a root whose
    image folder is a link the user made still converts."""
    full = Path(base) / rel  # an absolute rel replaces base
    top = os.path.normpath(os.path.abspath(root))
    if not allow_outside and os.path.commonpath([top, os.path.normpath(os.path.abspath(full))]) != top:
        raise ConvertError(f"{where}: image path {rel!r} leads outside {root} "
                           f"(give allow_outside_root=true to read it anyway)")
    return full


def load_image(path, where: str, check: bool = True):
    """-> (bytes, ext). Keeps the file's bytes when it is JPEG/PNG/WebP; other formats are
    re-encoded as PNG. check=True decodes it once, so a broken image fails the conversion
    (naming the record) rather than a training run hours later."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConvertError(f"{where}: image {path} cannot be read ({e.strerror or e})") from None
    ext = KEEP_EXTS.get(path.suffix.lower())
    if check or ext is None:
        try:
            img = Image.open(io.BytesIO(data))
            img.load()
        except Exception as e:
            raise ConvertError(f"{where}: image {path} does not decode ({e})") from None
        if ext is None:
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="PNG")
            data, ext = buf.getvalue(), "png"
    return data, ext


def require(cond, where: str, msg: str):
    if not cond:
        raise ConvertError(f"{where}: {msg}")
