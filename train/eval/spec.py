"""The SPEC benchmark, read exactly as released:
ROOT/<subset>/image2text.json: [{"query": image path (relative to the subset folder),
                                 "keys": [captions], "label": i}]
ROOT/<subset>/text2image.json: [{"query": caption, "keys": [image paths], "label": i}]
A query is right when its label's score is strictly the highest (tie_rule `strict`, the
default) or, with tie_rule `first`, when the label is np.argmax of the scores (the first of
equal scores wins: SPEC's official eval.py).
Accuracy is pooled over all queries of a subset; mean/* is the plain mean of the subsets (the
official eval.py). CLS (optional) is object-class accuracy on the subset's images, see classes.py."""
import json
from collections import OrderedDict
from pathlib import Path

import torch

from .base import Evaluator
from .classes import objects_in_caption, vocabulary
from .encode import encode_images, encode_texts
from .scoring import best_of, pct, scores_of, strict_top1, top1  # noqa: F401 (strict_top1: re-exported)

CLS_TEMPLATE = "a photo of a {}."


def load_subset(folder: Path):
    out = {}
    for name in ("image2text", "text2image"):
        path = folder / f"{name}.json"
        if not path.is_file():
            raise FileNotFoundError(f"SPEC subset {folder.name}: missing {path}")
        try:
            items = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(items, list):
            raise ValueError(f"{path}: expected a JSON list of {{query, keys, label}}")
        for n, it in enumerate(items):
            if not isinstance(it, dict) or not {"query", "keys", "label"} <= set(it) \
                    or not isinstance(it["label"], int) or not 0 <= it["label"] < len(it["keys"]):
                raise ValueError(f"{path}: item {n} is not {{query, keys, label}} with a valid label")
        out[name] = items
    return out


def image_objects(folder: Path, i2t, vocab):
    """{relative image path: [classes]} for CLS (see classes.py for the sources, in order)."""
    side = folder / "objects.json"
    if side.is_file():
        table = json.loads(side.read_text())
        unknown = {c for cs in table.values() for c in cs} - set(vocab)
        if unknown:
            raise ValueError(f"{side}: classes not in the CLS vocabulary: {sorted(unknown)[:5]}")
        return table
    return {it["query"]: objects_in_caption(it["keys"][it["label"]], vocab) for it in i2t}


class SpecEvaluator(Evaluator):
    type_name = "spec"

    def __init__(self, root=None, subsets=None, classes=None, data_root="data/default", **common):
        """root: the benchmark (default <data_root>/spec_heldout, the engine's held-out sets);
        limit: first N queries per direction and subset."""
        super().__init__(**common)
        self.root = Path(root or f"{data_root}/spec_heldout")
        if not self.root.is_dir():
            raise FileNotFoundError(f"SPEC root {self.root} does not exist")
        found = sorted(p.name for p in self.root.iterdir() if (p / "image2text.json").is_file())
        self.subsets = list(subsets or found)
        if not self.subsets:
            raise FileNotFoundError(f"no SPEC subsets (*/image2text.json) under {self.root}")
        self.vocab = vocabulary(classes)

    def inputs(self):
        images, texts = [], []
        for subset in self.subsets:
            folder = self.root / subset
            data = load_subset(folder)
            for n, it in enumerate(data["image2text"]):
                images.append(self.path(folder, it["query"], f"{folder}/image2text.json item {n}"))
                texts += it["keys"]
            for n, it in enumerate(data["text2image"]):
                images += [self.path(folder, k, f"{folder}/text2image.json item {n}") for k in it["keys"]]
                texts.append(it["query"])
        return images, texts

    def score(self, model, tokenizer, preprocess, device="cpu"):
        results, examples, rule = {}, [], self.tie_rule
        counts = {}
        cls_txt = None
        if self.vocab:
            cls_txt = torch.stack(list(encode_texts(model, tokenizer,
                                                    [CLS_TEMPLATE.format(c) for c in self.vocab],
                                                    self.batch_size, device).values()))
        for subset in self.subsets:
            folder = self.root / subset
            data = load_subset(folder)
            i2t_items, t2i_items = data["image2text"][:self.limit], data["text2image"][:self.limit]
            at = lambda rel, n, f, folder=folder: self.path(folder, rel, f"{folder / f}.json item {n}")
            q_img = [at(it["query"], n, "image2text") for n, it in enumerate(i2t_items)]
            k_img = [[at(k, n, "text2image") for k in it["keys"]] for n, it in enumerate(t2i_items)]
            texts = [k for it in i2t_items for k in it["keys"]] + [it["query"] for it in t2i_items]
            img = encode_images(model, preprocess, q_img + [p for ks in k_img for p in ks], self.batch_size,
                                device)
            txt = encode_texts(model, tokenizer, texts, self.batch_size, device)
            i2t = [top1(scores_of([txt[k] for k in it["keys"]], img[q], model), it["label"], rule)
                   for q, it in zip(q_img, i2t_items)]
            t2i = [top1(scores_of([img[p] for p in ks], txt[it["query"]], model, image_query=False),
                        it["label"], rule)
                   for ks, it in zip(k_img, t2i_items)]
            results[f"{subset}/i2t"] = pct(i2t)
            results[f"{subset}/t2i"] = pct(t2i)
            counts[f"{subset}/i2t"], counts[f"{subset}/t2i"] = len(i2t), len(t2i)
            if cls_txt is not None:
                objs = image_objects(folder, i2t_items, self.vocab)
                index = {c: n for n, c in enumerate(self.vocab)}
                hits = [best_of(scores_of(list(cls_txt), img[str(folder / rel)], model),
                                [index[c] for c in cs], rule)
                        for rel, cs in objs.items() if cs and str(folder / rel) in img]
                if hits:
                    results[f"{subset}/cls"] = pct(hits)
                    counts[f"{subset}/cls"] = len(hits)
            if self.n_examples:
                examples += candidate_sets(subset, folder, i2t_items, img, txt, self.n_examples)
        for d in ("i2t", "t2i", "cls"):
            vals = [results[f"{s}/{d}"] for s in self.subsets if f"{s}/{d}" in results]
            if vals:
                results[f"mean/{d}"] = sum(vals) / len(vals)
        return self.result(results, counts, examples)

    def summary(self, metrics):
        return format_table(metrics)


def candidate_sets(subset, folder, i2t_items, img, txt, n):
    """The first n candidate sets of a subset (image queries sharing one caption list) with the
    model's full image x caption score matrix: what the wandb example table shows."""
    sets = OrderedDict()
    for it in i2t_items:
        sets.setdefault(tuple(it["keys"]), {})[it["label"]] = str(folder / it["query"])
    out = []
    for keys, by_label in list(sets.items())[:n]:
        labels = sorted(by_label)
        images = torch.stack([img[by_label[label]] for label in labels])
        scores = images @ torch.stack([txt[k] for k in keys]).T
        out.append({"benchmark": "spec", "subset": subset, "images": [by_label[label] for label in labels],
                    "image_labels": labels, "captions": list(keys), "scores": scores.tolist()})
    return out


def format_table(results: dict) -> str:
    subsets = sorted({k.split("/")[0] for k in results if k.endswith("/i2t")} - {"mean"}) + ["mean"]
    has_cls = any(k.endswith("/cls") for k in results)
    lines = ["| subset | I2T | T2I |" + (" CLS |" if has_cls else ""),
             "| --- | ---: | ---: |" + (" ---: |" if has_cls else "")]
    for s in subsets:
        row = f"| {s} | {results[f'{s}/i2t']:.1f} | {results[f'{s}/t2i']:.1f} |"
        if has_cls:
            c = results.get(f"{s}/cls")
            row += f" {c:.1f} |" if c is not None else " — |"
        lines.append(row)
    return "\n".join(lines)
