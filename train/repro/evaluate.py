"""Score one model the same way for every row of the table:
  - SPEC held-out sets (official layout, read by train.eval.spec's loader and scored with its
    strict top-1 rule), per subset and direction, with a standard error over *sets* (queries of
    one set share keys and are not independent, so the set is the sampling unit);
  - object-class zero-shot: top-1 over the 14 class prompts "a photo of a <class>".

    python -m train.repro.evaluate weights=W.bin data=D out=scores.json [sets_out=sets.json]"""
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import open_clip
import torch

from hn_data.cli import REQUIRED, command, setting
from train.eval.encode import encode_images, encode_texts
from train.eval.spec import load_subset, strict_top1

open_clip.add_model_config(Path(__file__).parent / "model_configs")
MODEL = "hnclip-repro"


def load_model(weights, name=MODEL):
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(weights))
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(name)


def mean_se(per_set):
    """Mean (in %) and its standard error over sets."""
    n = len(per_set)
    m = sum(per_set) / n
    var = sum((x - m) ** 2 for x in per_set) / max(n - 1, 1)
    return 100 * m, 100 * math.sqrt(var / n)


@torch.no_grad()
def spec_scores(model, preprocess, tokenizer, root, per_set_out=None, limit=None):
    """Aggregates per subset and direction. per_set_out (a dict) receives each set's accuracy
    under "<subset>/<i2t|t2i>", in the file's order (paired comparisons between models need
    them); limit keeps each subset's first sets only (cheap repeated evaluation)."""
    root = Path(root)
    subsets = sorted(p.name for p in root.iterdir() if (p / "image2text.json").is_file())
    if not subsets:
        raise FileNotFoundError(f"no SPEC subsets (*/image2text.json) under {root}")
    out = {}
    for subset in subsets:
        folder = root / subset
        data = load_subset(folder)
        if limit:
            data = limit_sets(data, limit)
        paths = [str(folder / it["query"]) for it in data["image2text"]]
        paths += [str(folder / k) for it in data["text2image"] for k in it["keys"]]
        texts = ([k for it in data["image2text"] for k in it["keys"]]
                 + [it["query"] for it in data["text2image"]])
        img = encode_images(model, preprocess, paths)
        txt = encode_texts(model, tokenizer, texts)
        for direction in ("image2text", "text2image"):
            per_set = defaultdict(list)     # a set = the queries sharing one key list
            for it in data[direction]:
                if direction == "image2text":
                    scores = torch.stack([txt[k] for k in it["keys"]]) @ img[str(folder / it["query"])]
                else:
                    scores = torch.stack([img[str(folder / k)] for k in it["keys"]]) @ txt[it["query"]]
                per_set[tuple(it["keys"])].append(strict_top1(scores, it["label"]))
            acc, se = mean_se([sum(v) / len(v) for v in per_set.values()])
            d = "i2t" if direction == "image2text" else "t2i"
            if per_set_out is not None:
                per_set_out[f"{subset}/{d}"] = [sum(v) / len(v) for v in per_set.values()]
            out[f"{subset}/{d}"], out[f"{subset}/{d}_se"] = acc, se
            out[f"{subset}/n_sets"] = len(per_set)
    for d in ("i2t", "t2i"):
        out[f"mean/{d}"] = sum(out[f"{s}/{d}"] for s in subsets) / len(subsets)
        out[f"mean/{d}_se"] = math.sqrt(sum(out[f"{s}/{d}_se"] ** 2 for s in subsets)) / len(subsets)
    return out


def limit_sets(data, n):
    """The first n sets (distinct key lists) of each direction, all of their queries."""
    out = dict(data)
    for direction in ("image2text", "text2image"):
        keep = list(dict.fromkeys(tuple(it["keys"]) for it in data[direction]))[:n]
        keep = set(keep)
        out[direction] = [it for it in data[direction] if tuple(it["keys"]) in keep]
    return out


@torch.no_grad()
def zeroshot_scores(model, preprocess, tokenizer, root, per_item_out=None):
    root = Path(root)
    meta = json.loads((root / "labels.json").read_text())
    classes = meta["classes"]
    prompts = [f"a photo of a {c}" for c in classes]
    txt = encode_texts(model, tokenizer, prompts)
    W = torch.stack([txt[p] for p in prompts])
    paths = [str(root / it["image"]) for it in meta["items"]]
    img = encode_images(model, preprocess, paths)
    hits = [int((W @ img[p]).argmax()) == classes.index(it["label"]) for p, it in zip(paths, meta["items"])]
    acc = sum(hits) / len(hits)
    if per_item_out is not None:
        per_item_out["zeroshot"] = [int(h) for h in hits]
    return {"zeroshot/acc": 100 * acc, "zeroshot/se": 100 * math.sqrt(acc * (1 - acc) / len(hits)),
            "zeroshot/n": len(hits), "zeroshot/chance": 100 / len(classes)}


@dataclass
class EvaluateCommand:
    weights: str = setting(REQUIRED, "the model's weights (open_clip_pytorch_model.bin)")
    data: str = setting(REQUIRED, "the data folder train.repro.data wrote (spec_heldout/, zeroshot/)")
    out: str = setting(REQUIRED, "the scores' JSON file")
    sets_out: Optional[str] = setting(None, "also write each set's (and zero-shot image's) score here, "
                                      "for paired tests")


def run(args: EvaluateCommand):
    torch.manual_seed(0)
    model, preprocess, tokenizer = load_model(args.weights)
    per_set = {}
    scores = spec_scores(model, preprocess, tokenizer, Path(args.data) / "spec_heldout", per_set)
    scores.update(zeroshot_scores(model, preprocess, tokenizer, Path(args.data) / "zeroshot", per_set))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(scores, indent=2))
    if args.sets_out:
        Path(args.sets_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.sets_out).write_text(json.dumps(per_set))
    print(f"[repro] {args.weights}: SPEC I2T {scores['mean/i2t']:.1f} T2I {scores['mean/t2i']:.1f} "
          f"zero-shot {scores['zeroshot/acc']:.1f}", flush=True)
    return scores


main = command(EvaluateCommand, run, prog="hnclip-repro-evaluate", doc=__doc__)


if __name__ == "__main__":
    main()
