"""The SPEC benchmark, read exactly as released:
ROOT/<subset>/image2text.json: [{"query": image path (relative to the subset folder), "keys": [captions], "label": i}]
ROOT/<subset>/text2image.json: [{"query": caption, "keys": [image paths], "label": i}]
A query is right when its label's score is strictly the highest (a tie counts as wrong)."""
import json
from pathlib import Path

import torch

from .encode import encode_images, encode_texts


def strict_top1(scores: torch.Tensor, label: int) -> bool:
    others = torch.cat([scores[:label], scores[label + 1:]])
    return bool(scores[label] > others.max()) if others.numel() else True


def load_subset(folder: Path):
    out = {}
    for name in ("image2text", "text2image"):
        path = folder / f"{name}.json"
        if not path.is_file():
            raise FileNotFoundError(f"SPEC subset {folder.name}: missing {path}")
        items = json.loads(path.read_text())
        for n, it in enumerate(items):
            if not {"query", "keys", "label"} <= set(it) or not 0 <= it["label"] < len(it["keys"]):
                raise ValueError(f"{path}: item {n} is not {{query, keys, label}} with a valid label")
        out[name] = items
    return out


class SpecEvaluator:
    def __init__(self, root, batch_size=128, subsets=None):
        self.root = Path(root)
        self.batch_size = batch_size
        if not self.root.is_dir():
            raise FileNotFoundError(f"SPEC root {self.root} does not exist")
        found = sorted(p.name for p in self.root.iterdir() if (p / "image2text.json").is_file())
        self.subsets = subsets or found
        if not self.subsets:
            raise FileNotFoundError(f"no SPEC subsets (*/image2text.json) under {self.root}")

    @torch.no_grad()
    def run(self, model, tokenizer, preprocess, device="cpu"):
        was_training = model.training
        model.eval()
        results = {}
        for subset in self.subsets:
            folder = self.root / subset
            data = load_subset(folder)
            paths = [str(folder / it["query"]) for it in data["image2text"]]
            paths += [str(folder / k) for it in data["text2image"] for k in it["keys"]]
            texts = [k for it in data["image2text"] for k in it["keys"]] + [it["query"] for it in data["text2image"]]
            img = encode_images(model, preprocess, paths, self.batch_size, device)
            txt = encode_texts(model, tokenizer, texts, self.batch_size, device)
            i2t = [strict_top1(torch.stack([txt[k] for k in it["keys"]]) @ img[str(folder / it["query"])], it["label"])
                   for it in data["image2text"]]
            t2i = [strict_top1(torch.stack([img[str(folder / k)] for k in it["keys"]]) @ txt[it["query"]], it["label"])
                   for it in data["text2image"]]
            results[f"{subset}/i2t"] = 100.0 * sum(i2t) / len(i2t)
            results[f"{subset}/t2i"] = 100.0 * sum(t2i) / len(t2i)
        for d in ("i2t", "t2i"):
            results[f"mean/{d}"] = sum(results[f"{s}/{d}"] for s in self.subsets) / len(self.subsets)
        model.train(was_training)
        return results


def format_table(results: dict) -> str:
    subsets = sorted({k.split("/")[0] for k in results if k.endswith("/i2t")} - {"mean"}) + ["mean"]
    lines = ["| subset | I2T | T2I |", "| --- | ---: | ---: |"]
    for s in subsets:
        lines.append(f"| {s} | {results[f'{s}/i2t']:.1f} | {results[f'{s}/t2i']:.1f} |")
    return "\n".join(lines)
