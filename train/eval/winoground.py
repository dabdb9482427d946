"""Winoground (Thrush et al., "Winoground: Probing Vision and Language Models for
Visio-Linguistic Compositionality", 2022): examples.jsonl lines {"id", "caption_0",
"caption_1", "image_0", "image_1", "tag", ...}; images are IMAGE_ROOT/<image_k>.png. Per
example, with s(c, i), comparisons strict as the benchmark's own code (or `first`: the
candidate listed first wins a tie):
  text  = c0 chosen for i0 and c1 chosen for i1
  image = i0 chosen for c0 and i1 chosen for c1
  group = text and image. Per-tag breakdowns (Object, Relation, Both) beside the totals."""
import json
from pathlib import Path

import torch

from .base import Evaluator
from .encode import encode_images, encode_texts
from .scoring import pct, scores_of, top1


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
        out.append({"captions": [rec["caption_0"], rec["caption_1"]], "images": imgs, "tag": rec.get("tag", "")})
    return out


class WinogroundEvaluator(Evaluator):
    type_name = "winoground"

    def __init__(self, jsonl, image_root, **common):
        super().__init__(**common)
        self.items = load_winoground(jsonl, image_root, path_of=self.path)[:self.limit]

    def score(self, model, tokenizer, preprocess, device="cpu"):
        img = encode_images(model, preprocess, [p for it in self.items for p in it["images"]], self.batch_size, device)
        txt = encode_texts(model, tokenizer, [c for it in self.items for c in it["captions"]], self.batch_size, device)
        text, image, examples, r = [], [], [], self.tie_rule
        for it in self.items:
            # s[i][c]: image i against caption c
            s = torch.stack([scores_of([txt[c] for c in it["captions"]], img[p]) for p in it["images"]])
            text.append(top1(s[0], 0, r) and top1(s[1], 1, r))
            image.append(top1(s[:, 0], 0, r) and top1(s[:, 1], 1, r))
            if len(examples) < self.n_examples:
                examples.append({"benchmark": "winoground", "subset": it["tag"], "images": it["images"],
                                 "image_labels": [0, 1], "captions": it["captions"], "scores": s.tolist()})
        group = [t and i for t, i in zip(text, image)]
        metrics = {"text": pct(text), "image": pct(image), "group": pct(group)}
        for tag in sorted({it["tag"] for it in self.items} - {""}):
            sel = [n for n, it in enumerate(self.items) if it["tag"] == tag]
            for name, hits in (("text", text), ("image", image), ("group", group)):
                metrics[f"{tag}/{name}"] = pct(hits[n] for n in sel)
        return self.result(metrics, {"items": len(self.items)}, examples)
