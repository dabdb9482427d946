"""VSR (Liu et al., "Visual Spatial Reasoning", 2023) as an evaluation: the released jsonl
(data/splits/<random|zeroshot>/test.jsonl: one {"image", "caption", "label" (1/0 or
true/false), "relation", ...} a line); images (COCO 2017) under IMAGE_ROOT.

VSR asks for a true/false judgement of one caption; a dual encoder gives a similarity with no
threshold. The protocol used here for dual encoders, as the compositionality literature
evaluates contrastive models on VSR, compares within pairs where one side is fixed:
  i2t  for an image with a true and a false caption: s(img, true) beats s(img, false);
       every (true, false) caption pair of the image counts once;
  t2i  for a caption that is true of one image and false of another: s(true img) beats s(false img).
`avg/acc` is the mean of i2t and t2i over all their pairs pooled; i2t is also broken down by
the true caption's relation (`relation/<r>/acc`). Pairs follow the tie rule."""
from pathlib import Path

from .base import Evaluator
from .encode import encode_images, encode_texts
from .jsonl import jsonl_records
from .scoring import pct, scores_of, top1


def _label(v, where):
    if isinstance(v, bool):
        return v
    if v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise ValueError(f"{where}: label must be 0/1 or true/false, got {v!r}")


def load_vsr(jsonl, image_root, path_of=None):
    path_of = path_of or (lambda r, rel, where: str(Path(r) / rel))
    out = []
    for where, rec in jsonl_records(jsonl, "VSR", ("image", "caption", "label")):
        out.append((path_of(image_root, rec["image"], where), rec["caption"], _label(rec["label"], where),
                    rec.get("relation", "")))
    return out


def vsr_pairs(records):
    """-> (i2t [(image, true caption, false caption, relation)], t2i [(caption, true image, false image)])."""
    by_image, by_caption = {}, {}
    for img, cap, lab, rel in records:
        by_image.setdefault(img, ([], []))[0 if lab else 1].append((cap, rel))
        by_caption.setdefault(cap, ([], []))[0 if lab else 1].append(img)
    i2t = [(img, t, f, rel) for img, (trues, falses) in by_image.items()
           for t, rel in dict.fromkeys(trues) for f, _ in dict.fromkeys(falses)]
    t2i = [(cap, ti, fi) for cap, (trues, falses) in by_caption.items()
           for ti in dict.fromkeys(trues) for fi in dict.fromkeys(falses)]
    return i2t, t2i


class VsrEvaluator(Evaluator):
    type_name = "vsr"

    def __init__(self, jsonl, image_root, **common):
        super().__init__(**common)
        records = load_vsr(jsonl, image_root, self.path)
        self.i2t, self.t2i = (p[:self.limit] for p in vsr_pairs(records))
        self.n_records = len(records)
        if not self.i2t and not self.t2i:
            raise ValueError(f"VSR: {jsonl} has no image with both a true and a false caption, "
                             "and no caption true of one image and false of another")

    def inputs(self):
        return ([p[0] for p in self.i2t] + [q for p in self.t2i for q in p[1:]],
                [c for p in self.i2t for c in p[1:3]] + [p[0] for p in self.t2i])

    def score(self, model, tokenizer, preprocess, device="cpu"):
        paths = [p[0] for p in self.i2t] + [q for p in self.t2i for q in p[1:]]
        img = encode_images(model, preprocess, paths, self.batch_size, device)
        txt = encode_texts(model, tokenizer, [c for p in self.i2t for c in p[1:3]] + [p[0] for p in self.t2i],
                           self.batch_size, device)
        r = self.tie_rule
        i2t = [top1(scores_of([txt[t], txt[f]], img[i], model), 0, r) for i, t, f, _ in self.i2t]
        t2i = [top1(scores_of([img[ti], img[fi]], txt[c], model, image_query=False), 0, r) for c, ti,
               fi in self.t2i]
        metrics = {"i2t/acc": pct(i2t), "t2i/acc": pct(t2i), "avg/acc": pct(i2t + t2i)}
        for rel in sorted({p[3] for p in self.i2t} - {""}):
            metrics[f"relation/{rel}/acc"] = pct(h for h, p in zip(i2t, self.i2t) if p[3] == rel)
        counts = {"records": self.n_records, "i2t_pairs": len(i2t), "t2i_pairs": len(t2i)}
        return self.result({k: v for k, v in metrics.items() if v == v}, counts)
