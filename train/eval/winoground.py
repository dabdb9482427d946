"""Winoground (Thrush et al., "Winoground: Probing Vision and Language Models for
Visio-Linguistic Compositionality", 2022): examples.jsonl lines {"id", "caption_0",
"caption_1", "image_0", "image_1", "tag", ...}; images are IMAGE_ROOT/<image_k>.png. Text,
image and group scores (paired.py), strict as the benchmark's own code, overall and per tag
(Object, Relation, Both)."""
from pathlib import Path

from .jsonl import jsonl_records
from .paired import Pair
from .paired_evaluator import PairedEvaluator


def load_winoground(jsonl, image_root, ext=".png", path_of=None):
    image_root = Path(image_root)
    path_of = path_of or (lambda r, rel, where: str(Path(r) / rel))
    out = []
    for where, rec in jsonl_records(jsonl, "Winoground", ("caption_0", "caption_1", "image_0", "image_1")):
        imgs = [path_of(image_root, rec[k] if Path(rec[k]).suffix else rec[k] + ext, where)
                for k in ("image_0", "image_1")]
        out.append(Pair(imgs, [rec["caption_0"], rec["caption_1"]], rec.get("tag", "")))
    return out


class WinogroundEvaluator(PairedEvaluator):
    type_name = benchmark = "winoground"

    def __init__(self, jsonl, image_root, **common):
        super().__init__(**common)
        self.items = load_winoground(jsonl, image_root, path_of=self.path)[:self.limit]
