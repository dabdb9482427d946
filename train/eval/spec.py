"""The SPEC benchmark, read exactly as released:
ROOT/<subset>/image2text.json: [{"query": image path (relative to the subset folder), "keys": [captions], "label": i}]
ROOT/<subset>/text2image.json: [{"query": caption, "keys": [image paths], "label": i}]
A query is right when its label's score is strictly the highest (a tie counts as wrong).
Accuracy is pooled over all queries of a subset; mean/* is the plain mean of the subsets (the
official eval.py). CLS (optional) is object-class accuracy on the subset's images, see classes.py."""
import json
from collections import OrderedDict
from pathlib import Path

import torch

from .classes import objects_in_caption, vocabulary
from .encode import encode_images, encode_texts
from .scoring import pct, strict_best_of, strict_top1

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


class SpecEvaluator:
    def __init__(self, root, batch_size=128, subsets=None, classes=None, limit=None, examples=0):
        self.root = Path(root)
        self.batch_size = batch_size
        if not self.root.is_dir():
            raise FileNotFoundError(f"SPEC root {self.root} does not exist")
        found = sorted(p.name for p in self.root.iterdir() if (p / "image2text.json").is_file())
        self.subsets = list(subsets or found)
        if not self.subsets:
            raise FileNotFoundError(f"no SPEC subsets (*/image2text.json) under {self.root}")
        self.vocab = vocabulary(classes)
        self.limit = limit          # first N queries per direction and subset (quick in-training evals)
        self.n_examples = examples  # candidate sets kept for the wandb table
        self.examples = []

    @torch.no_grad()
    def run(self, model, tokenizer, preprocess, device="cpu"):
        was_training = model.training
        model.eval()
        results, self.examples = {}, []
        cls_txt = None
        if self.vocab:
            cls_txt = torch.stack(list(encode_texts(model, tokenizer, [CLS_TEMPLATE.format(c) for c in self.vocab],
                                                    self.batch_size, device).values()))
        for subset in self.subsets:
            folder = self.root / subset
            data = load_subset(folder)
            i2t_items, t2i_items = data["image2text"][:self.limit], data["text2image"][:self.limit]
            paths = [str(folder / it["query"]) for it in i2t_items]
            paths += [str(folder / k) for it in t2i_items for k in it["keys"]]
            texts = [k for it in i2t_items for k in it["keys"]] + [it["query"] for it in t2i_items]
            img = encode_images(model, preprocess, paths, self.batch_size, device)
            txt = encode_texts(model, tokenizer, texts, self.batch_size, device)
            i2t = [strict_top1(torch.stack([txt[k] for k in it["keys"]]) @ img[str(folder / it["query"])], it["label"])
                   for it in i2t_items]
            t2i = [strict_top1(torch.stack([img[str(folder / k)] for k in it["keys"]]) @ txt[it["query"]], it["label"])
                   for it in t2i_items]
            results[f"{subset}/i2t"] = pct(i2t)
            results[f"{subset}/t2i"] = pct(t2i)
            if cls_txt is not None:
                objs = image_objects(folder, i2t_items, self.vocab)
                index = {c: n for n, c in enumerate(self.vocab)}
                hits = [strict_best_of(cls_txt @ img[str(folder / rel)], [index[c] for c in cs])
                        for rel, cs in objs.items() if cs and str(folder / rel) in img]
                if hits:
                    results[f"{subset}/cls"] = pct(hits)
            if self.n_examples:
                self.examples += candidate_sets(subset, folder, i2t_items, img, txt, self.n_examples)
        for d in ("i2t", "t2i", "cls"):
            vals = [results[f"{s}/{d}"] for s in self.subsets if f"{s}/{d}" in results]
            if vals:
                results[f"mean/{d}"] = sum(vals) / len(vals)
        model.train(was_training)
        return results


def candidate_sets(subset, folder, i2t_items, img, txt, n):
    """The first n candidate sets of a subset (image queries sharing one caption list) with the
    model's full image x caption score matrix: what the wandb example table shows."""
    sets = OrderedDict()
    for it in i2t_items:
        sets.setdefault(tuple(it["keys"]), {})[it["label"]] = str(folder / it["query"])
    out = []
    for keys, by_label in list(sets.items())[:n]:
        labels = sorted(by_label)
        scores = torch.stack([img[by_label[l]] for l in labels]) @ torch.stack([txt[k] for k in keys]).T
        out.append({"benchmark": "spec", "subset": subset, "images": [by_label[l] for l in labels],
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
