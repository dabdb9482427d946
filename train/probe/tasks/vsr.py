"""Spatial-relation classification in VSR's format (Liu et al. 2023): one JSON object a line,

    {"image": "000000085637.jpg", "caption": "The cat is on the laptop.", "label": 1,
     "relation": "on", ...}

`image` is relative to `image_root` (VSR ships COCO images separately; default: the jsonl's
folder). `label` is 1 when the caption is true of the image. Per-category scores use
`relation`. Lines whose image is missing are skipped and counted; anything else malformed is
an error naming the file and line."""
from pathlib import Path

import torch

from hn_data.convert_common import jsonl_records

from .common import SPLITS, Split, Task


def load_split(path, image_root=None):
    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    images, texts, labels, rels, keys, missing = [], [], [], [], [], 0
    for lineno, rec in jsonl_records(path):  # errors name FILE:LINE
        for key in ("image", "caption", "label", "relation"):
            if key not in rec:
                raise ValueError(f"{path}:{lineno}: missing VSR key '{key}'")
        if rec["label"] not in (0, 1, True, False):
            raise ValueError(f"{path}:{lineno}: label must be 0 or 1, got {rec['label']!r}")
        img = root / rec["image"]
        if not img.is_file():
            missing += 1
            continue
        images.append(str(img))
        texts.append(str(rec["caption"]))
        labels.append(float(rec["label"]))
        rels.append(str(rec["relation"]))
        # embed mode: what the caption says, as ids (VSR records carry subj and obj)
        keys.append(f"{rec.get('subj', '')}|{rec['relation']}|{rec.get('obj', '')}")
    split = Split(images=images, texts=texts,
                  keys=keys,
                  targets=torch.tensor(labels), categories=rels)
    return split, missing


def build(paths: dict, image_root=None) -> Task:
    """paths: {train|val|test: jsonl path}."""
    splits, missing = {}, {}
    for s in SPLITS:
        if not paths.get(s):
            raise ValueError(f"VSR: no jsonl given for split '{s}'")
        splits[s], missing[s] = load_split(paths[s], image_root)
    task = Task("vsr", "binary", splits).check()
    task.skipped = missing
    return task
