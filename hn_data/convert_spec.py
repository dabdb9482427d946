"""Convert a benchmark folder in the official SPEC layout into candidate-set shards.

    python -m hn_data.convert_spec root=SPEC_ROOT out=data/spec_sets [subsets=[count,existence]]

SPEC_ROOT/<subset>/image2text.json lists {"query": image path relative to the subset folder,
"keys": [K captions], "label": index of the right caption}. All queries that share the same
caption list are one candidate set: image q pairs with caption keys[label]. When a subset has
no image2text.json, text2image.json ({"query": caption, "keys": [K image paths], "label"}) is
read the same way with the roles swapped. Images keep their original bytes. An image path
that is absolute or climbs out of SPEC_ROOT is refused unless allow_outside_root=true."""
from dataclasses import dataclass
from pathlib import Path
from typing import List

from .cli import setting
from .convert_common import (
    ConvertKeys,
    ShardSink,
    at,
    converter_command,
    inside,
    json_array_records,
    load_image,
    require,
)


class _Set:
    def __init__(self, captions):
        self.captions = list(captions)      # canonical order: the first record's key order
        self.images = []                    # (path, caption index)
        self.lines = []

    def free(self, ci, path):
        return all(c != ci and p != path for p, c in self.images)


def _group(records, path, swap: bool):
    """records of one json file -> sets, as {sorted captions: [_Set, ...]} in first-seen order."""
    groups = {}
    for line, rec in records:
        where = at(path, line)
        require(isinstance(rec, dict), where, f"a record must be an object, got {type(rec).__name__}")
        for k in ("query", "keys", "label"):
            require(k in rec, where, f"record has no '{k}' field")
        q, keys, label = rec["query"], rec["keys"], rec["label"]
        require(isinstance(q, str) and q.strip(), where, "'query' must be a non-empty string")
        require(isinstance(keys, list) and len(keys) >= 2
                and all(isinstance(k, str) and k.strip() for k in keys),
                where, "'keys' must list at least 2 non-empty strings")
        require(len(set(keys)) == len(keys), where, "'keys' holds the same entry twice")
        require(isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(keys),
                where, f"'label' must be an index into 'keys' (0..{len(keys) - 1}), got {label!r}")
        if swap:  # text2image: the keys are images, the query is the caption
            img, cap = keys[label], q
            # the set is identified by its images; captions accumulate from the queries
            sig = tuple(sorted(keys))
            sets = groups.setdefault(sig, [])
            s = next((s for s in sets if img not in [p for p, _ in s.images] and cap not in s.captions), None)
            if s is None:
                s = _Set([])
                sets.append(s)
            s.captions.append(cap)
            s.images.append((img, len(s.captions) - 1))
        else:
            sig = tuple(sorted(keys))
            sets = groups.setdefault(sig, [])
            s0 = sets[0] if sets else _Set(keys)
            ci = s0.captions.index(keys[label])
            # two images pairing with one caption would be false negatives of each other:
            # such a record opens another set with the same captions
            s = next((s for s in sets if s.free(ci, q)), None)
            if s is None:
                s = _Set(s0.captions)
                sets.append(s)
            s.images.append((q, ci))
        s.lines.append(line)
    return [s for sets in groups.values() for s in sets]


def convert(root, out, subsets=None, sets_per_shard=256, check_images=True,
            allow_outside_root=False) -> dict:
    root = Path(root)
    require(root.is_dir(), str(root), "not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and
                     ((p / "image2text.json").exists() or (p / "text2image.json").exists()))
    if subsets:
        missing = sorted(set(subsets) - {p.name for p in folders})
        require(not missing, str(root), f"no subset folder with image2text.json/text2image.json: {missing}")
        folders = [p for p in folders if p.name in subsets]
    require(folders, str(root), "no <subset>/image2text.json or <subset>/text2image.json found")
    sink = ShardSink(out, sets_per_shard=sets_per_shard, source=root)
    for folder in folders:
        swap = not (folder / "image2text.json").exists()
        path = folder / ("text2image.json" if swap else "image2text.json")
        for s in _group(json_array_records(path), path, swap):
            where = at(path, s.lines[0])
            require(len(s.captions) >= 2, where, f"set has a single caption ({s.captions[0]!r}); "
                    f"text2image.json lists no other query for its images")
            images = [load_image(inside(root, folder, p, at(path, ln), allow_outside_root), at(path, ln),
                                 check_images)
                      for (p, _), ln in zip(s.images, s.lines)]
            rec = {"subset": folder.name, "captions": s.captions,
                   "image_caption": [c for _, c in s.images], "objects": [],
                   "meta": {"source": "spec", "file": str(path), "line": s.lines[0],
                            "images": [p for p, _ in s.images]}}
            sink.add(rec, images, where)
    return sink.close()


@dataclass
class ConvertSpecCommand(ConvertKeys):
    root: str = setting(help="folder holding <subset>/image2text.json")
    subsets: List[str] = setting([], "subset names (default: all)")


def convert_keys(keys: ConvertSpecCommand) -> dict:
    return convert(keys.root, keys.out, list(keys.subsets), keys.sets_per_shard, keys.check_images,
                   keys.allow_outside_root)


main = converter_command(ConvertSpecCommand, convert_keys, name="convert_spec", prog="hnclip-convert-spec",
                         doc=__doc__)


if __name__ == "__main__":
    main()
