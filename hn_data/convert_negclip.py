"""Convert NegCLIP's training TSV into candidate-set shards.

    python -m hn_data.convert_negclip tsv=train_neg_clip.tsv out=data/negclip_sets \
        [image_root=COCO_ROOT] [neg_images=1] [neg_captions=0]

NegCLIP's TSV (written by pandas, tab-separated, a header row, often a leading unnamed index
column) has the columns `title` (the caption), `filepath` (the image), `neg_caption` (a
Python list literal of hard-negative captions) and `neg_image` (a Python list literal of row
indices, 0-based over the data rows, of hard-negative images). Row i becomes one set:

    images:   row i's image, then the images of its first `neg_images` entries of neg_image
    captions: row i's title, its negative captions (text-only negatives), then the title of
              each negative image (which pairs with that image) and, with neg_captions=N,
              up to N of that row's own negative captions

Duplicate caption strings inside a set are dropped (keeping the first), so a caption is never
its own negative. A row with no negative at all is skipped and counted. A filepath that is
absolute or climbs out of the image root is refused unless allow_outside_root=true."""
import ast
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .cli import setting
from .convert_common import (
    ConvertError,
    ConvertKeys,
    ShardSink,
    at,
    converter_command,
    inside,
    load_image,
    require,
)

COLUMNS = ("title", "filepath", "neg_caption", "neg_image")


def read_rows(tsv):
    """-> list of (line, {column: value}) with neg_caption/neg_image parsed."""
    tsv = Path(tsv)
    csv.field_size_limit(sys.maxsize)
    rows = []
    try:
        f = open(tsv, newline="", encoding="utf-8")
    except OSError as e:
        raise ConvertError(f"{tsv}: cannot read ({e.strerror or e})") from None
    with f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        require(header is not None, str(tsv), "empty file")
        missing = [c for c in COLUMNS if c not in header]
        require(not missing, at(tsv, 1), f"header lacks column(s) {missing}; found {header}")
        col = {c: header.index(c) for c in COLUMNS}
        for fields in reader:
            line = reader.line_num
            if not fields or all(not x.strip() for x in fields):
                continue
            where = at(tsv, line)
            require(len(fields) == len(header), where, f"{len(fields)} fields, the header has {len(header)}")
            row = {c: fields[i] for c, i in col.items()}
            for c in ("neg_caption", "neg_image"):
                try:
                    row[c] = ast.literal_eval(row[c]) if row[c].strip() else []
                except (ValueError, SyntaxError):
                    raise ConvertError(f"{where}: column {c} is not a Python list literal: "
                                       f"{row[c][:80]!r}") from None
                require(isinstance(row[c], (list, tuple)), where,
                        f"column {c} must be a list, got {row[c]!r}")
            if isinstance(row["neg_caption"], (list, tuple)):
                require(all(isinstance(x, str) for x in row["neg_caption"]), where,
                        "neg_caption must list strings")
            require(all(isinstance(x, int) and not isinstance(x, bool) for x in row["neg_image"]),
                    where, "neg_image must list integer row indices")
            require(row["title"].strip(), where, "empty title")
            require(row["filepath"].strip(), where, "empty filepath")
            rows.append((line, row))
    return rows


def convert(tsv, out, image_root=None, neg_images=1, neg_captions=0, sets_per_shard=256,
            check_images=True, allow_outside_root=False) -> dict:
    tsv = Path(tsv)
    root = Path(image_root) if image_root else tsv.parent
    rows = read_rows(tsv)
    require(rows, str(tsv), "no data row")
    sink = ShardSink(out, sets_per_shard=sets_per_shard, source=tsv)
    skipped = 0
    for line, row in rows:
        where = at(tsv, line)
        for j in row["neg_image"]:
            require(0 <= j < len(rows), where, f"neg_image index {j} outside the {len(rows)} data rows")
        captions, images, links, paths = [], [], [], []

        def caption(text, captions=captions):  # this row's lists, bound now
            text = text.strip()
            if text and text not in captions:
                captions.append(text)
            return captions.index(text) if text else None

        def image(r, w, images=images, links=links, paths=paths):
            c = caption(r["title"])
            if c in links:  # its title is already another image's caption: a false negative
                return
            images.append(load_image(inside(root, root, r["filepath"], w, allow_outside_root), w,
                                     check_images))
            links.append(c)
            paths.append(r["filepath"])

        image(row, where)
        for text in row["neg_caption"]:
            caption(text)
        for j in row["neg_image"][:neg_images]:
            nline, nrow = rows[j]
            image(nrow, f"{where} (neg_image row {j}, {at(tsv, nline)})")
            for text in nrow["neg_caption"][:neg_captions]:
                caption(text)
        if len(captions) < 2:
            skipped += 1
            continue
        rec = {"subset": "negclip", "captions": captions, "image_caption": links, "objects": [],
               "meta": {"source": "negclip", "file": str(tsv), "line": line,
                        "images": paths}}
        sink.add(rec, images, where)
    manifest = sink.close()
    manifest["rows_without_negatives"] = skipped
    return manifest


@dataclass
class ConvertNegclipCommand(ConvertKeys):
    tsv: str = setting(help="NegCLIP's training TSV")
    image_root: Optional[str] = setting(None, "filepath is relative to this (default: the TSV's folder)")
    neg_images: int = setting(1, "hard-negative images per set")
    neg_captions: int = setting(0, "negative captions taken from each negative image's row")


def convert_keys(keys: ConvertNegclipCommand) -> dict:
    return convert(keys.tsv, keys.out, keys.image_root, keys.neg_images, keys.neg_captions,
                   keys.sets_per_shard, keys.check_images, keys.allow_outside_root)


main = converter_command(ConvertNegclipCommand, convert_keys, name="convert_negclip",
                         prog="hnclip-convert-negclip", doc=__doc__,
                         note=lambda m: f"; {m['rows_without_negatives']} rows without negatives skipped")


if __name__ == "__main__":
    main()
