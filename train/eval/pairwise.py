"""What SugarCrepe, ARO, VALSE, SVO-Probes and their kin share: one image, one right caption,
one or more wrong ones (or the mirror: one caption, a right and a wrong image). An item is
right when the right candidate is chosen under the tie rule; `right_pos` is where the right
candidate sits in the benchmark's own candidate order (ARO's code lists [false, true]), which
the `first` rule needs. Items carry a group (sub-task, relation, attribute pair, piece) for the
benchmark's macro rule."""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

import torch

from .base import Evaluator
from .encode import encode_images, encode_texts
from .scoring import scores_of, top1


@dataclass
class Item:
    image: object              # a path, or (path, (x, y, w, h)) for a crop
    right: str
    wrong: List[str]
    group: str
    right_pos: int = 0
    meta: dict = field(default_factory=dict)


def official_order(scores, right_pos):
    """[right, *wrong] scores -> the benchmark's order, with the right one at right_pos."""
    return torch.cat([scores[1:right_pos + 1], scores[:1], scores[right_pos + 1:]])


def score_items(items, model, tokenizer, preprocess, device="cpu", batch_size=128, rule="strict"):
    """-> (list of bool, list of score lists [right, *wrong])."""
    img = encode_images(model, preprocess, [it.image for it in items], batch_size, device)
    txt = encode_texts(model, tokenizer, [t for it in items for t in [it.right, *it.wrong]], batch_size,
                       device)
    hits, scores = [], []
    for it in items:
        s = scores_of([txt[t] for t in [it.right, *it.wrong]], img[it.image], model)
        hits.append(top1(official_order(s, it.right_pos), it.right_pos, rule))
        scores.append(s.tolist())
    return hits, scores


class ItemEvaluator(Evaluator):
    """An evaluator over `self.items` (Items: an image, its right caption, its wrong ones): the
    inputs and the scoring pass are the same for every such benchmark; each one only reads its
    files and turns the hits into its own metrics."""
    items = ()

    def inputs(self):
        return [it.image for it in self.items], [t for it in self.items for t in [it.right, *it.wrong]]

    def scored(self, model, tokenizer, preprocess, device="cpu"):
        """-> (hits, scores [right, *wrong] per item, hits by group)."""
        hits, scores = score_items(self.items, model, tokenizer, preprocess, device, self.batch_size,
                                   self.tie_rule)
        return hits, scores, by_group(self.items, hits)

    def examples(self, hits, scores, benchmark):
        return examples_from(self.items, hits, scores, benchmark, self.n_examples)


def read_json(path, kind):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind}: annotation file {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{kind}: {path} is not valid JSON ({e})") from None


def subtask_files(root, subtasks, known, kind):
    """-> [(name, path)]: the sub-tasks asked for, or every known one whose <name>.json is under
    root (the releases ship one JSON per sub-task); none found is an error naming the folder."""
    root = Path(root)
    names = list(subtasks or [s for s in known if (root / f"{s}.json").is_file()])
    if not names:
        raise FileNotFoundError(f"{kind}: none of {known} (.json) under {root}")
    return [(name, root / f"{name}.json") for name in names]


def need(rec, keys, where):
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: expected an object with {list(keys)}, got {type(rec).__name__}")
    missing = [k for k in keys if k not in rec]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")


def by_group(items, hits):
    out = {}
    for it, h in zip(items, hits):
        out.setdefault(it.group, []).append(h)
    return out


def examples_from(items, hits, scores, benchmark, n):
    """Rows for the wandb example table: the image, its candidate captions, the scores."""
    out = []
    for it, s in list(zip(items, scores))[:n]:
        out.append({"benchmark": benchmark, "subset": it.group, "images": [it.image], "image_labels": [0],
                    "captions": [it.right, *it.wrong], "scores": [s]})
    return out
