"""Winoground: examples.jsonl lines {"id", "caption_0", "caption_1", "image_0", "image_1", "tag",
...}; images are IMAGE_ROOT/<image_k>.png. Per example, with s(c, i):
  text  = s(c0,i0) > s(c1,i0) and s(c1,i1) > s(c0,i1)
  image = s(c0,i0) > s(c0,i1) and s(c1,i1) > s(c1,i0)
  group = text and image."""
import json
from pathlib import Path

import torch

from .encode import encode_images, encode_texts
from .scoring import pct


def load_winoground(jsonl, image_root, ext=".png"):
    jsonl, image_root = Path(jsonl), Path(image_root)
    if not jsonl.is_file():
        raise FileNotFoundError(f"Winoground: {jsonl} does not exist")
    out = []
    for n, line in enumerate(jsonl.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"Winoground: {jsonl} line {n + 1} is not JSON ({e})") from None
        missing = [k for k in ("caption_0", "caption_1", "image_0", "image_1") if k not in rec]
        if missing:
            raise ValueError(f"Winoground: {jsonl} line {n + 1} lacks {missing}")
        imgs = [str(image_root / (rec[k] if Path(rec[k]).suffix else rec[k] + ext)) for k in ("image_0", "image_1")]
        out.append({"captions": [rec["caption_0"], rec["caption_1"]], "images": imgs, "tag": rec.get("tag", "")})
    return out


class WinogroundEvaluator:
    def __init__(self, jsonl, image_root, batch_size=128, limit=None, examples=0):
        self.items = load_winoground(jsonl, image_root)[:limit]
        self.batch_size, self.n_examples, self.examples = batch_size, examples, []

    @torch.no_grad()
    def run(self, model, tokenizer, preprocess, device="cpu"):
        was_training = model.training
        model.eval()
        img = encode_images(model, preprocess, [p for it in self.items for p in it["images"]], self.batch_size, device)
        txt = encode_texts(model, tokenizer, [c for it in self.items for c in it["captions"]], self.batch_size, device)
        text, image, self.examples = [], [], []
        for it in self.items:
            # s[i][c]: image i against caption c
            s = torch.stack([img[p] for p in it["images"]]) @ torch.stack([txt[c] for c in it["captions"]]).T
            text.append(bool(s[0, 0] > s[0, 1]) and bool(s[1, 1] > s[1, 0]))
            image.append(bool(s[0, 0] > s[1, 0]) and bool(s[1, 1] > s[0, 1]))
            if len(self.examples) < self.n_examples:
                self.examples.append({"benchmark": "winoground", "subset": it["tag"], "images": it["images"],
                                      "image_labels": [0, 1], "captions": it["captions"], "scores": s.tolist()})
        model.train(was_training)
        return {"text": pct(text), "image": pct(image), "group": pct(t and i for t, i in zip(text, image))}
