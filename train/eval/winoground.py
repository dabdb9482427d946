"""Winoground (Thrush et al., "Winoground: Probing Vision and Language Models for
Visio-Linguistic Compositionality", 2022): examples.jsonl lines {"id", "caption_0",
"caption_1", "image_0", "image_1", "tag", ...}; images are IMAGE_ROOT/<image_k>.png. Text,
image and group scores (paired.py), strict as the benchmark's own code, overall and per tag
(Object, Relation, Both)."""
import json
from pathlib import Path

from .base import Evaluator
from .paired import Pair, score_pairs


def load_winoground(jsonl, image_root, ext=".png", path_of=None):
    jsonl, image_root = Path(jsonl), Path(image_root)
    path_of = path_of or (lambda r, rel, where: str(Path(r) / rel))
    if not jsonl.is_file():
        raise FileNotFoundError(f"Winoground: {jsonl} does not exist")
    out = []
    for n, line in enumerate(jsonl.read_text().splitlines()):
        if not line.strip():
            continue
        where = f"Winoground: {jsonl} line {n + 1}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where} is not JSON ({e})") from None
        missing = [k for k in ("caption_0", "caption_1", "image_0", "image_1") if k not in rec]
        if missing:
            raise ValueError(f"{where} lacks {missing}")
        imgs = [path_of(image_root, rec[k] if Path(rec[k]).suffix else rec[k] + ext, where)
                for k in ("image_0", "image_1")]
        out.append(Pair(imgs, [rec["caption_0"], rec["caption_1"]], rec.get("tag", "")))
    return out


class WinogroundEvaluator(Evaluator):
    type_name = "winoground"

    def __init__(self, jsonl, image_root, **common):
        super().__init__(**common)
        self.items = load_winoground(jsonl, image_root, path_of=self.path)[:self.limit]

    def inputs(self):
        return [p for it in self.items for p in it.images], [c for it in self.items for c in it.captions]

    def score(self, model, tokenizer, preprocess, device="cpu"):
        metrics, examples = score_pairs(self.items, model, tokenizer, preprocess, device, self.batch_size,
                                        self.tie_rule, self.n_examples, "winoground")
        return self.result(metrics, {"items": len(self.items)}, examples)
