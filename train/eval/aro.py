"""ARO VG-Relation / VG-Attribution: a JSON list of {"image_path", "bbox_x", "bbox_y", "bbox_w",
"bbox_h", "true_caption", "false_caption", "relation_name" | "attributes": [a, b]}; images under
IMAGE_ROOT. As the benchmark's code does: the image is cropped to the box; VG-Relation's figure is
the macro mean over relations; VG-Attribution's is the macro mean over attribute pairs
("a_b") that have at least 25 items (smaller pairs are dropped from the mean, not from `micro`).
The original takes argmax over [false, true], so a tie picks the false caption: strict, as ours."""
from pathlib import Path

from .pairwise import Item, examples_from, need, read_json, score_items
from .scoring import macro, pct

MIN_ATTRIBUTE_PAIR = 25


def load_aro(path, image_root, kind):
    if kind not in ("relation", "attribution"):
        raise ValueError(f"ARO kind must be relation or attribution, got {kind!r}")
    data = read_json(path, f"ARO VG-{kind}")
    if not isinstance(data, list):
        raise ValueError(f"ARO: {path} must be a JSON list")
    group_key = "relation_name" if kind == "relation" else "attributes"
    items = []
    for n, rec in enumerate(data):
        need(rec, ("image_path", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "true_caption", "false_caption", group_key),
             f"{path} item {n}")
        group = rec[group_key] if kind == "relation" else f"{rec['attributes'][0]}_{rec['attributes'][1]}"
        box = tuple(rec[k] for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
        items.append(Item((str(Path(image_root) / rec["image_path"]), box), rec["true_caption"],
                          [rec["false_caption"]], group))
    return items


class AroEvaluator:
    def __init__(self, ann, image_root, kind, batch_size=128, limit=None, examples=0):
        self.kind = kind
        self.items = load_aro(ann, image_root, kind)[:limit]
        self.batch_size, self.n_examples, self.examples = batch_size, examples, []

    def run(self, model, tokenizer, preprocess, device="cpu"):
        hits, scores = score_items(self.items, model, tokenizer, preprocess, device, self.batch_size)
        groups = {}
        for it, h in zip(self.items, hits):
            groups.setdefault(it.group, []).append(h)
        floor = MIN_ATTRIBUTE_PAIR if self.kind == "attribution" else 1
        kept = {g: pct(h) for g, h in groups.items() if len(h) >= floor}
        self.examples = examples_from(self.items, hits, scores, f"aro_{self.kind}", self.n_examples)
        return {"macro/acc": macro(kept.values()), "micro/acc": pct(hits), "groups_kept": float(len(kept))}
