"""Zero-shot classification, top-1, strict (a tie with a wrong class is wrong).
Data (zeroshot_data.py): an image folder ROOT/<class>/*.{jpg,png,...}; CIFAR-10 / CIFAR-100's
test set as released (ROOT is cifar-10-batches-py or cifar-100-python, or the folder holding
it: cifar_format.py); VOC 2007's devkit folder, multi-label (voc_format.py); Hateful Memes'
release, img/ + <split>.jsonl (hateful_memes_format.py; `split`, dev_seen by default: ELEVATER's
500 test images; listed images that are missing are skipped and counted); or a webdataset in
clip_benchmark's layout: shards of KEY.{jpg,png,webp} + KEY.cls (class index). Class names:
`classnames` (a file, one a line, in class-index order), or a shipped dataset's names
(`dataset`, or `classnames` naming one: zeroshot_shipped.py, ImageNet-1k and ELEVATER's sets);
for a folder with neither, the folder names ('_' read as a space). Templates: "openai" (CLIP's
80 ImageNet prompts), "simple", a list of strings with '{}', a file of them, or a shipped
dataset's (the default when `dataset` is given).
`classnames: imagenet` gives open_clip's ImageNet-1k names. The class embedding is the
normalised mean of its normalised prompt embeddings (CLIP's recipe). Beside top-1 and mean
per-class accuracy, `metric/<name>` is the figure the dataset is reported by (zeroshot_metrics.py:
ELEVATER's 11-point mAP for VOC 2007, ROC AUC for Hateful Memes, ...)."""
import torch
from PIL import Image

from .base import Evaluator
from .encode import encode_images, encode_texts
from .scoring import best_of, dual_only, pct, top1
from .shards import read_samples
from .zeroshot_data import load_root, read_names, templates_from
from .zeroshot_metrics import mean_11point_ap, metric_name, probabilities, roc_auc, target_matrix
from .zeroshot_shipped import canonical, names as _shipped_names, shipped


class ZeroShotEvaluator(Evaluator):
    type_name = "zeroshot"

    def __init__(self, root=None, urls=None, classnames=None, templates=None, dataset=None, metric=None,
                 split=None, **common):
        """dataset: a shipped dataset (zeroshot_shipped.names()) whose class names and templates
        are used where `classnames` / `templates` are not given; templates default to "openai".
        metric: the figure reported as `metric/<name>` (zeroshot_metrics.METRICS); by default
        ELEVATER's for a shipped dataset (11point_map for VOC 2007, roc_auc for Hateful Memes,
        mean_per_class for four), else accuracy.
        split: which split file of a Hateful Memes release root to read (default dev_seen)."""
        super().__init__(**common)
        if (root is None) == (urls is None):
            raise ValueError("zero-shot: give exactly one of root (image folder) or urls (webdataset)")
        if dataset is not None and canonical(dataset) is None:
            raise ValueError(f"zero-shot dataset {dataset!r}: no shipped class names; "
                             f"shipped: {', '.join(_shipped_names())}")
        ship_names, ship_templates = shipped(dataset) if dataset is not None else (None, None)
        self.dataset = canonical(dataset) if dataset is not None else None
        if templates is None and ship_templates is not None:
            self.templates = list(ship_templates)
        else:
            self.templates = templates_from(templates)
        given = None if classnames else ship_names
        self.skipped, self.missing = 0, None
        if root is not None:
            source = (f"the shipped class names of {self.dataset!r} (give `classnames`, or `dataset: null` "
                      "for the folder's own names)")
            self.items, self.names, self.missing = load_root(root, classnames, given, source, split,
                                                             self.allow_outside_root)
            self.items = self.items[:self.limit]
        else:
            if split is not None:
                raise ValueError(f"zero-shot webdataset {urls}: `split` is for a Hateful Memes release root")
            if not classnames and given is None:
                raise ValueError("zero-shot webdataset: `classnames` (a file) or a shipped `dataset` "
                                 "is required")
            self.names = read_names(classnames) if classnames else list(given)
            samples, self.skipped = read_samples(urls, ("image", "cls"))
            self.items = [(s["image"], int(s["cls"].decode().strip())) for s in samples][:self.limit]
            bad = [c for _, c in self.items if not 0 <= c < len(self.names)]
            if bad:
                raise ValueError(f"zero-shot webdataset {urls}: class index {bad[0]} outside "
                                 f"{len(self.names)} names")
        where = f"zero-shot {self.dataset or root or urls}"
        self.metric = metric_name(metric, self.dataset, where)
        if self.metric == "roc_auc":
            present = {c for _, c in self.items}
            if not all(isinstance(c, int) for c in present):
                raise ValueError(f"{where}: roc_auc needs single-label data (one class an image)")
            if len(self.names) != 2 or len(present) != 2:
                raise ValueError(f"{where}: roc_auc needs two classes, both with images; found "
                                 f"{len(self.names)} classes, {len(present)} with images (a `limit` that "
                                 "keeps the first class only?)")

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
        scores = [w @ img[k] for k in keys]
        # a multi-label image (VOC 2007) is right when its top class is one it shows
        hits = [top1(s, c, self.tie_rule) if isinstance(c, int) else best_of(s, c.shown(), self.tie_rule)
                for s, (_, c) in zip(scores, self.items)]
        # mean per-class accuracy: CLIP's metric on FGVC Aircraft, Oxford-IIIT Pets, Caltech-101
        # and Flowers-102 (Radford et al., 2021, Table 9's notes), over the classes with images
        per_class = {}
        for h, (_, c) in zip(hits, self.items):
            for k in [c] if isinstance(c, int) else sorted(c.shown()):
                per_class.setdefault(k, []).append(h)
        metrics = {"top1": pct(hits),
                   "mean_per_class": sum(pct(v) for v in per_class.values()) / len(per_class)}
        labels = [c for _, c in self.items]
        metrics[f"metric/{self.metric}"] = self.figure(metrics, torch.stack(scores), labels)
        counts = {"items": len(hits), "skipped": self.skipped}
        if self.missing is not None:  # a release whose listed images may be absent (Hateful Memes)
            counts["skipped_missing_image"] = self.missing
        return self.result(metrics, counts)

    def figure(self, metrics, scores, labels):
        """The dataset's own metric from the (N, C) cosines, over ELEVATER's probabilities."""
        if self.metric == "accuracy":
            return metrics["top1"]
        if self.metric == "mean_per_class":
            return metrics["mean_per_class"]
        probs = probabilities(scores).cpu().numpy()
        if self.metric == "roc_auc":
            return roc_auc(probs[:, 1], [c == 1 for c in labels])
        return mean_11point_ap(probs, target_matrix(labels, len(self.names)))


class ZeroShotSuiteEvaluator(Evaluator):
    """ELEVATER-style zero-shot over a list of classification datasets: `datasets` maps a name
    to one zero-shot suite's options (root | urls, classnames, templates, dataset, metric, split); the
    figures are top-1 per dataset and `avg/top1`, their plain mean (SPEC reports this average over
    ELEVATER's nine datasets), and each dataset's own metric (`<name>/metric/<metric>`,
    zeroshot_metrics.py) with `avg/metric`, their mean (each set by the figure ELEVATER
    reports for it). A dataset named as a shipped one (`cifar10`, `imagenet`, ...; see
    zeroshot_shipped.py) gets the shipped class names and templates wherever its options do not
    give their own."""
    type_name = "zeroshot_suite"

    def __init__(self, datasets, **common):
        super().__init__(**common)
        if not isinstance(datasets, dict) or not datasets:
            raise ValueError("zeroshot_suite: `datasets` must map a name to {root|urls, classnames, "
                             "templates}")
        self.parts = {}
        for name, opts in datasets.items():
            unknown = set(opts) - {"root", "urls", "classnames", "templates", "dataset", "metric", "split"}
            if unknown:
                raise ValueError(f"zeroshot_suite dataset {name!r}: unknown key(s) {sorted(unknown)}")
            if "dataset" not in opts and canonical(name):
                opts = {**opts, "dataset": name}
            self.parts[name] = ZeroShotEvaluator(**opts, **common)

    def inputs(self):
        parts = [ev.inputs() for ev in self.parts.values()]
        return [k for i, _ in parts for k in i], [t for _, ts in parts for t in ts]

    def score(self, model, tokenizer, preprocess, device="cpu"):
        metrics, counts = {}, {}
        for name, ev in self.parts.items():
            r = ev.score(model, tokenizer, preprocess, device)
            metrics[f"{name}/top1"] = r.metrics["top1"]
            metrics[f"{name}/mean_per_class"] = r.metrics["mean_per_class"]
            metrics[f"{name}/metric/{ev.metric}"] = r.metrics[f"metric/{ev.metric}"]
            counts.update({f"{name}/{k}": v for k, v in r.counts.items()})
        top = [v for k, v in metrics.items() if k.endswith("/top1")]
        own = [v for k, v in metrics.items() if "/metric/" in k]
        metrics["avg/top1"] = sum(top) / len(top)
        metrics["avg/metric"] = sum(own) / len(own)  # ELEVATER's average: each dataset by its own metric
        return self.result(metrics, counts)
