"""What Winoground, EqBen and their kin share: two images, two captions, caption k matching
image k. With s(c, i), under the tie rule (scoring.top1, the candidate listed first winning
under `first`):
  text  = c0 chosen for i0 and c1 chosen for i1
  image = i0 chosen for c0 and i1 chosen for c1
  group = text and image
(Thrush et al., "Winoground", 2022), in percent, overall and per group."""
from dataclasses import dataclass
from typing import List

import torch

from .encode import encode_images, encode_texts, load_image
from .scoring import pct, scores_of, top1


@dataclass
class Pair:
    images: List[object]     # [image 0, image 1]: paths (or keys `load` understands)
    captions: List[str]      # [caption 0, caption 1]
    group: str = ""


def score_pairs(pairs, model, tokenizer, preprocess, device, batch_size, rule, n_examples, benchmark,
                load=load_image):
    """-> (metrics, examples)."""
    img = encode_images(model, preprocess, [p for it in pairs for p in it.images], batch_size, device,
                        load=load)
    txt = encode_texts(model, tokenizer, [c for it in pairs for c in it.captions], batch_size, device)
    text, image, examples = [], [], []
    for it in pairs:
        # s[i][c]: image i against caption c
        s = torch.stack([scores_of([txt[c] for c in it.captions], img[p], model) for p in it.images])
        text.append(top1(s[0], 0, rule) and top1(s[1], 1, rule))
        image.append(top1(s[:, 0], 0, rule) and top1(s[:, 1], 1, rule))
        if len(examples) < n_examples:
            examples.append({"benchmark": benchmark, "subset": it.group, "images": list(it.images),
                             "image_labels": [0, 1], "captions": list(it.captions), "scores": s.tolist()})
    group = [t and i for t, i in zip(text, image)]
    metrics = {"text": pct(text), "image": pct(image), "group": pct(group)}
    for g in sorted({it.group for it in pairs} - {""}):
        sel = [n for n, it in enumerate(pairs) if it.group == g]
        for name, hits in (("text", text), ("image", image), ("group", group)):
            metrics[f"{g}/{name}"] = pct(hits[n] for n in sel)
    return metrics, examples
