"""What SugarCrepe, ARO and VALSE share: one image, one right caption, one or more wrong ones.
An item is right iff s(img, right) > s(img, every wrong) strictly. Items carry a group (the
benchmark's sub-task, relation, attribute pair, instrument) for the benchmark's macro rule."""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import torch

from .encode import encode_images, encode_texts


@dataclass
class Item:
    image: object              # a path, or (path, (x, y, w, h)) for a crop
    right: str
    wrong: List[str]
    group: str
    meta: dict = field(default_factory=dict)


@torch.no_grad()
def score_items(items, model, tokenizer, preprocess, device="cpu", batch_size=128):
    """-> (list of bool, list of score lists [right, *wrong])."""
    was_training = model.training
    model.eval()
    img = encode_images(model, preprocess, [it.image for it in items], batch_size, device)
    txt = encode_texts(model, tokenizer, [t for it in items for t in [it.right, *it.wrong]], batch_size, device)
    hits, scores = [], []
    for it in items:
        s = torch.stack([txt[t] for t in [it.right, *it.wrong]]) @ img[it.image]
        hits.append(bool(s[0] > s[1:].max()))
        scores.append(s.tolist())
    model.train(was_training)
    return hits, scores


def read_json(path, kind):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind}: annotation file {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{kind}: {path} is not valid JSON ({e})") from None


def need(rec, keys, where):
    missing = [k for k in keys if k not in rec]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")


def examples_from(items, hits, scores, benchmark, n):
    """Rows for the wandb example table: the image, its candidate captions, the scores."""
    out = []
    for it, h, s in list(zip(items, hits, scores))[:n]:
        out.append({"benchmark": benchmark, "subset": it.group, "images": [it.image], "image_labels": [0],
                    "captions": [it.right, *it.wrong], "scores": [s]})
    return out
