"""Convert a folder of JSON-lines files (users' own candidate sets) into candidate-set shards.

    python -m hn_data.convert_jsonl src=my_sets/ out=data/my_sets

Every *.jsonl file under `src` (recursively, in sorted order) holds one set per line:

    {"images": ["a.jpg", "b.jpg"],                 # paths relative to the .jsonl file's folder,
                                                   #   inside src (allow_outside_root=true: anywhere)
     "captions": ["a red cube left of a ball", "a red cube right of a ball", "..."],
     "image_caption": [0, 1],                      # optional: per image, its caption's index;
                                                   #   default: image k pairs with caption k
     "subset": "relative_spatial",                 # optional: a name for per-subset logging
     "objects": ["cube", "ball"], "meta": {...}}   # optional, kept as given

Captions that no image points at are text-only hard negatives. A malformed line stops the
conversion with an error naming the file and line."""
from dataclasses import dataclass
from pathlib import Path

from .cli import setting
from .convert_common import (
    ConvertKeys,
    ShardSink,
    at,
    converter_command,
    inside,
    jsonl_records,
    load_image,
    require,
)

KNOWN = {"images", "captions", "image_caption", "subset", "objects", "meta"}


def convert(src, out, sets_per_shard=256, check_images=True, allow_outside_root=False) -> dict:
    src = Path(src)
    files = [src] if src.is_file() else sorted(src.rglob("*.jsonl"))
    root = src.parent if src.is_file() else src
    require(files, str(src), "no *.jsonl file found")
    sink = ShardSink(out, sets_per_shard=sets_per_shard, source=src)
    for path in files:
        for line, rec in jsonl_records(path):
            where = at(path, line)
            require(isinstance(rec, dict), where, f"a line must hold a JSON object, got {type(rec).__name__}")
            unknown = sorted(set(rec) - KNOWN)
            require(not unknown, where, f"unknown field(s) {unknown}; allowed: {sorted(KNOWN)}")
            imgs, caps = rec.get("images"), rec.get("captions")
            require(isinstance(imgs, list) and imgs and all(isinstance(p, str) and p for p in imgs),
                    where, "'images' must list at least one image path")
            require(isinstance(caps, list) and len(caps) >= 2, where,
                    "'captions' must list at least 2 captions")
            links = rec.get("image_caption", list(range(len(imgs))))
            require(isinstance(rec.get("subset", ""), str), where, "'subset' must be a string")
            require(isinstance(rec.get("objects", []), list), where, "'objects' must be a list")
            require(isinstance(rec.get("meta", {}), dict), where, "'meta' must be an object")
            images = [load_image(inside(root, path.parent, p, where, allow_outside_root), where, check_images)
                      for p in imgs]
            out_rec = {"subset": rec.get("subset", ""), "captions": caps, "image_caption": links,
                       "objects": rec.get("objects", []),
                       "meta": dict(rec.get("meta", {}), source=str(path), line=line, images=imgs)}
            sink.add(out_rec, images, where)
    return sink.close()


@dataclass
class ConvertJsonlCommand(ConvertKeys):
    src: str = setting(help="a folder of *.jsonl files (or one .jsonl file)")


def convert_keys(keys: ConvertJsonlCommand) -> dict:
    return convert(keys.src, keys.out, keys.sets_per_shard, keys.check_images, keys.allow_outside_root)


main = converter_command(ConvertJsonlCommand, convert_keys, name="convert_jsonl", prog="hnclip-convert-jsonl",
                         doc=__doc__)


if __name__ == "__main__":
    main()
