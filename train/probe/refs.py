"""RefCOCOg-style referring-expression annotations: one JSON object per line.

    {"image": "COCO_train2014_000000581857.jpg", "bbox": [x, y, w, h],
     "phrase": "the woman in the red coat", "category": "person", "split": "train"}

- `image`: a path, absolute or relative to `image_root` (default: the jsonl's folder);
- `bbox`: COCO convention, pixels, top-left corner plus width and height;
- `phrase` (one expression) or `sentences` (a list, as RefCOCOg's refs carry: one example
  per sentence);
- `category`: used for per-category scores (COCO super-category in the paper);
- `split`: train | val | test;
- optional `width`, `height` (else read from the image header).

A line with a missing key or unreadable JSON is an error naming the file and line; a box that
is empty or lies outside its image is skipped and counted (real annotations have a few)."""
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

from PIL import Image

from hn_data.convert_common import jsonl_records

SPLIT_ALIASES = {"train": "train", "val": "val", "validation": "val", "dev": "val", "test": "test"}


@dataclass
class Ref:
    image: str
    phrase: str
    box: Tuple[float, float, float, float]  # x0, y0, x1, y1, normalised to [0, 1]
    category: str
    split: str

    @property
    def centre(self):
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    @property
    def area(self):
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def load_refs(path, image_root=None) -> Tuple[List[Ref], dict]:
    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    refs, skipped, sizes = [], {"bad_box": 0, "missing_image": 0}, {}
    for lineno, rec in jsonl_records(path):  # errors name FILE:LINE
        where = f"{path}:{lineno}"
        for key in ("image", "bbox", "category", "split"):
            if key not in rec:
                raise ValueError(f"{where}: missing key '{key}' (see train/probe/refs.py for the format)")
        phrases = rec.get("sentences") or ([rec["phrase"]] if "phrase" in rec else None)
        if not phrases:
            raise ValueError(f"{where}: needs 'phrase' or a non-empty 'sentences' list")
        split = SPLIT_ALIASES.get(str(rec["split"]).lower())
        if split is None:
            raise ValueError(f"{where}: split '{rec['split']}' is not one of train/val/test")
        img = Path(rec["image"])
        img = img if img.is_absolute() else root / img
        if "width" in rec and "height" in rec:
            w, h = float(rec["width"]), float(rec["height"])
        else:
            if img not in sizes:
                if not img.is_file():
                    skipped["missing_image"] += 1
                    continue
                with Image.open(img) as im:
                    sizes[img] = im.size
            w, h = sizes[img]
        x, y, bw, bh = (float(v) for v in rec["bbox"])
        x0, y0, x1, y1 = max(x, 0) / w, max(y, 0) / h, min(x + bw, w) / w, min(y + bh, h) / h
        if x1 <= x0 or y1 <= y0:
            skipped["bad_box"] += 1
            continue
        for p in phrases:
            refs.append(Ref(str(img), str(p), (x0, y0, x1, y1), str(rec["category"]), split))
    return refs, skipped
