"""Zero-shot classification, top-1, strict (a tie with a wrong class is wrong).
Data: an image folder ROOT/<class>/*.{jpg,png,...} (class = folder name, '_' read as a space,
unless `classnames` gives one name a line in sorted-folder order), or a webdataset in
clip_benchmark's layout: shards of KEY.{jpg,png,webp} + KEY.cls (class index), with
`classnames` (a file, one a line). Templates: "openai" (CLIP's 80 ImageNet prompts), "simple",
a list of strings with '{}', or a file of them. `classnames: imagenet` gives open_clip's
ImageNet-1k names (for a folder of the 1,000 wnid folders in sorted order). The class
embedding is the normalised mean of its normalised prompt embeddings (CLIP's recipe)."""
from pathlib import Path

import torch
from PIL import Image

from hn_data.tar_io import IMAGE_EXTS

from .base import Evaluator
from .encode import encode_images, encode_texts
from .scoring import dual_only, pct, top1
from .shards import read_samples


def templates_from(spec):
    if spec in (None, "openai", "simple"):
        from open_clip import zero_shot_metadata as z  # a slow import: only when needed
        named = z.SIMPLE_IMAGENET_TEMPLATES if spec == "simple" else z.OPENAI_IMAGENET_TEMPLATES
        return [t("{}") if callable(t) else t for t in named]
    if isinstance(spec, str):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"zero-shot templates {spec!r}: not openai/simple and no such file")
        spec = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    spec = list(spec)
    if not spec or any("{}" not in t for t in spec):
        raise ValueError(f"zero-shot templates must each contain '{{}}': {spec[:3]}")
    return spec


def read_names(path):
    """A file with one class name a line, or "imagenet" (open_clip's ImageNet-1k class names)."""
    if path == "imagenet":
        from open_clip import zero_shot_metadata as z
        return list(z.IMAGENET_CLASSNAMES)
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"zero-shot classnames file {p} does not exist")
    return [line.strip() for line in p.read_text().splitlines() if line.strip()]


def load_folder(root, classnames=None):
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"zero-shot image folder {root} does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    names = read_names(classnames) if classnames else [p.name.replace("_", " ") for p in folders]
    if len(names) != len(folders):
        raise ValueError(f"{classnames}: {len(names)} class names for {len(folders)} folders in {root}")
    items = [(str(f), c) for c, folder in enumerate(folders) for f in sorted(folder.iterdir())
             if f.suffix.lower().lstrip(".") in IMAGE_EXTS]
    if not items:
        raise FileNotFoundError(f"zero-shot image folder {root}: no images under {root}/<class>/")
    return items, names


class ZeroShotEvaluator(Evaluator):
    type_name = "zeroshot"

    def __init__(self, root=None, urls=None, classnames=None, templates="openai", **common):
        super().__init__(**common)
        if (root is None) == (urls is None):
            raise ValueError("zero-shot: give exactly one of root (image folder) or urls (webdataset)")
        self.templates = templates_from(templates)
        self.skipped = 0
        if root is not None:
            self.items, self.names = load_folder(root, classnames)
            self.items = self.items[:self.limit]
        else:
            if not classnames:
                raise ValueError("zero-shot webdataset: `classnames` (a file) is required")
            self.names = read_names(classnames)
            samples, self.skipped = read_samples(urls, ("image", "cls"))
            self.items = [(s["image"], int(s["cls"].decode().strip())) for s in samples][:self.limit]
            bad = [c for _, c in self.items if not 0 <= c < len(self.names)]
            if bad:
                raise ValueError(f"zero-shot webdataset {urls}: class index {bad[0]} outside "
                                 f"{len(self.names)} names")

    def classifier(self, model, tokenizer, device):
        prompts = [t.format(c) for c in self.names for t in self.templates]
        txt = encode_texts(model, tokenizer, prompts, self.batch_size, device)
        w = torch.stack([torch.stack([txt[t.format(c)] for t in self.templates]).mean(0) for c in self.names])
        return w / w.norm(dim=-1, keepdim=True)

    def inputs(self):
        return [x for x, _ in self.items], []  # class prompts are not benchmark data

    def score(self, model, tokenizer, preprocess, device="cpu"):
        dual_only(model, "zero-shot")
        w = self.classifier(model, tokenizer, device)
        # in-memory images (from shards) are keyed by their position
        keys = [x if isinstance(x, str) else n for n, (x, _) in enumerate(self.items)]
        load = lambda k: Image.open(k).convert("RGB") if isinstance(k, str) else self.items[k][0]
        img = encode_images(model, preprocess, keys, self.batch_size, device, load=load)
        hits = [top1(w @ img[k], c, self.tie_rule) for k, (_, c) in zip(keys, self.items)]
        return self.result({"top1": pct(hits)}, {"items": len(hits), "skipped": self.skipped})


class ZeroShotSuiteEvaluator(Evaluator):
    """ELEVATER-style zero-shot over a list of classification datasets: `datasets` maps a name
    to one zero-shot suite's options (root | urls, classnames, templates); the figure is top-1
    per dataset and `avg/top1`, their plain mean (SPEC reports this average over ELEVATER's
    nine datasets)."""
    type_name = "zeroshot_suite"

    def __init__(self, datasets, **common):
        super().__init__(**common)
        if not isinstance(datasets, dict) or not datasets:
            raise ValueError("zeroshot_suite: `datasets` must map a name to {root|urls, classnames, "
                             "templates}")
        self.parts = {}
        for name, opts in datasets.items():
            unknown = set(opts) - {"root", "urls", "classnames", "templates"}
            if unknown:
                raise ValueError(f"zeroshot_suite dataset {name!r}: unknown key(s) {sorted(unknown)}")
            self.parts[name] = ZeroShotEvaluator(**opts, **common)

    def inputs(self):
        parts = [ev.inputs() for ev in self.parts.values()]
        return [k for i, _ in parts for k in i], [t for _, ts in parts for t in ts]

    def score(self, model, tokenizer, preprocess, device="cpu"):
        metrics, counts = {}, {}
        for name, ev in self.parts.items():
            r = ev.score(model, tokenizer, preprocess, device)
            metrics[f"{name}/top1"] = r.metrics["top1"]
            counts.update({f"{name}/{k}": v for k, v in r.counts.items()})
        metrics["avg/top1"] = sum(metrics.values()) / len(metrics)
        return self.result(metrics, counts)
