"""COLA single-object setting (Ray et al., "COLA: A Benchmark for Compositional Text-to-image
Retrieval", 2023): data/COLA_singleobjects_benchmark_{GQA,CLEVR,PACO}.json as released, holding
the 320 multi-attribute class captions ("square white plate") and, per image,
[image_file, objects_attributes_annotation, label, hard_list] with one 0/1 entry per class in
`label` (the class is in the image) and `hard_list` (the image is a hard distractor set member
for that class). Its README names the two parts `labels` and `data`; its scripts/eval.py reads
them as items 0 and 1 of a list: both shapes are read.

Images are looked up by the file name of `image_file` in each folder of `image_root` in turn
(the release's paths are the authors' own); rows whose image is missing are skipped and counted.

Metric, as its ColaSingleObjAP: every image is scored against every class caption (s(image,
caption), a dual encoder's cosine); for each class that has a positive image at all and at least
one hard image, the average precision of its scores over its hard images; `map` is the mean of
these, in percent. AP is the step-wise sum over distinct score thresholds, sum_k (R_k - R_{k-1})
P_k, as torchmetrics and scikit-learn compute it: tied scores enter together, so the tie rule has
no say here. A class whose hard images hold no positive has no defined AP: it is left out and
counted (`classes_no_hard_positive`), where torchmetrics would give NaN."""
from pathlib import Path, PurePosixPath

import torch

from .base import Evaluator
from .encode import encode_images, encode_texts
from .pairwise import read_json
from .scoring import dual_only


def average_precision(scores, labels):
    """AP of binary labels ranked by scores (higher first); ties form one threshold."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    positives = sum(labels)
    ap, tp, seen, recall_before = 0.0, 0, 0, 0.0
    for n, i in enumerate(order):
        tp += labels[i]
        seen += 1
        if n + 1 < len(order) and scores[order[n + 1]] == scores[i]:
            continue  # the same threshold: wait for the whole tied group
        recall = tp / positives
        ap += (recall - recall_before) * (tp / seen)
        recall_before = recall
    return ap


def _parts(data, ann):
    if isinstance(data, dict) and {"labels", "data"} <= set(data):
        return data["labels"], data["data"]
    if isinstance(data, list) and len(data) == 2 and isinstance(data[0], list):
        return data[0], data[1]
    raise ValueError(f"COLA single-object: {ann} must hold `labels` (class captions) and `data` "
                     "(as {\"labels\": [...], \"data\": [...]} or [labels, data])")


def load_cola_single(ann, image_roots):
    roots = [Path(r) for r in (image_roots if isinstance(image_roots, (list, tuple)) else [image_roots])]
    classes, rows = _parts(read_json(ann, "COLA single-object"), ann)
    if not classes or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"COLA single-object: {ann}: the labels must be a list of class captions")
    images, skipped = [], 0
    for n, rec in enumerate(rows):
        where = f"COLA single-object: {ann} item {n}"
        if not (isinstance(rec, list) and len(rec) == 4 and isinstance(rec[0], str)):
            raise ValueError(f"{where}: expected [image_file, objects_attributes_annotation, label, "
                             "hard_list]")
        label, hard = rec[2], rec[3]
        for name, v in (("label", label), ("hard_list", hard)):
            if not (isinstance(v, list) and len(v) == len(classes) and all(x in (0, 1) for x in v)):
                raise ValueError(f"{where}: {name} must hold one 0/1 per class ({len(classes)})")
        fname = PurePosixPath(rec[0].replace("\\", "/")).name
        path = next((str(r / fname) for r in roots if (r / fname).is_file()), None)
        if path is None:
            skipped += 1
            continue
        images.append((path, [int(x) for x in label], [int(x) for x in hard]))
    return list(classes), images, skipped


class ColaSingleEvaluator(Evaluator):
    type_name = "cola_single"

    def __init__(self, ann, image_root, **common):
        """ann: one COLA_singleobjects_benchmark_*.json; image_root: a folder or a list of them
        (Visual Genome's VG_100K and VG_100K_2, or the CLEVR / PACO images)."""
        super().__init__(**common)
        self.classes, self.images, self.skipped = load_cola_single(ann, image_root)
        self.images = self.images[:self.limit]
        if not self.images:
            raise ValueError(f"COLA single-object: no image of {ann} found under {image_root} "
                             f"({self.skipped} missing)")

    def inputs(self):
        return [p for p, _, _ in self.images], list(self.classes)

    def score(self, model, tokenizer, preprocess, device="cpu"):
        dual_only(model, "COLA single-object")
        img = encode_images(model, preprocess, [p for p, _, _ in self.images], self.batch_size, device)
        txt = encode_texts(model, tokenizer, self.classes, self.batch_size, device)
        s = torch.stack([img[p] for p, _, _ in self.images]) @ torch.stack([txt[c] for c in self.classes]).T
        aps, no_positive, no_hard, no_hard_positive = [], 0, 0, 0
        for k in range(len(self.classes)):
            labels = [lab[k] for _, lab, _ in self.images]
            hard = [n for n, (_, _, h) in enumerate(self.images) if h[k]]
            if not any(labels):
                no_positive += 1
            elif not hard:
                no_hard += 1
            elif not any(labels[n] for n in hard):
                no_hard_positive += 1
            else:
                aps.append(average_precision([float(s[n, k]) for n in hard], [labels[n] for n in hard]))
        if not aps:
            raise ValueError("COLA single-object: no class has a positive among its hard images")
        metrics = {"map": 100 * sum(aps) / len(aps)}
        counts = {"images": len(self.images), "skipped_missing_image": self.skipped,
                  "classes_scored": len(aps), "classes_no_positive": no_positive,
                  "classes_no_hard_image": no_hard, "classes_no_hard_positive": no_hard_positive}
        return self.result(metrics, counts)
