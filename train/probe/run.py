"""Wire one backbone and its tasks into probe runs: frozen heads, per-layer curves, joint.

Returns plain dicts (what results.json holds), so the report can be rebuilt from the file."""
import copy
import time
from collections import defaultdict

import torch

from . import features as FT
from .heads import Probe, Standardize, TextKeys, TextTable
from .search import ProbeModel, Settings, SplitData, search
from .tasks.boxes import iou_and_giou
from .tasks.common import SPLITS

PIXEL_CACHE_BYTES = 1.5e9  # joint training re-reads images each epoch unless they fit here


def text_side(task, mode, model, tokenizer):
    """(per-split text inputs, factory for a fresh text module, its width)."""
    if mode == "none":
        return {s: None for s in SPLITS}, (lambda: None), 0
    if mode == "text_tower":
        texts = [t for s in SPLITS for t in task.splits[s].texts]
        table, rows = FT.encode_texts(model, tokenizer, texts)
        idx = {s: torch.tensor([rows[t] for t in task.splits[s].texts]) for s in SPLITS}
        # standardise like the image side: statements differing in one word ("top left" vs
        # "bottom right") have nearly collinear unit embeddings, which the probe barely separates
        tr = table[idx["train"].unique()]
        if len(tr) > 1:
            table = (table - tr.mean(0)) / tr.std(0).clamp(min=1e-6)
        return (idx,
                (lambda: TextTable(table)), table.shape[1])
    if mode == "embed":
        proto = TextKeys(task.splits["train"].keys)
        ids = {s: proto.ids(task.splits[s].keys) for s in SPLITS}
        return ids, (lambda: TextKeys(task.splits["train"].keys)), proto.dim
    raise ValueError(f"features.text '{mode}': use text_tower | embed | none")


def category_stats(task):
    """What the paper correlates per-category scores with (Table 5)."""
    stats = defaultdict(lambda: {"n_train": 0, "area": [], "distance": []})
    for c in task.splits["train"].categories:
        stats[c]["n_train"] += 1
    te = task.splits["test"]
    for i, c in enumerate(te.categories):
        if te.area:
            stats[c]["area"].append(te.area[i])
            stats[c]["distance"].append(te.distance[i])
    return {c: {"n_train": v["n_train"],
                "area": sum(v["area"]) / len(v["area"]) if v["area"] else None,
                "distance": sum(v["distance"]) / len(v["distance"]) if v["distance"] else None}
            for c, v in stats.items()}


def per_category(hits, categories):
    acc = defaultdict(list)
    for h, c in zip(hits, categories):
        acc[c].append(h)
    return {c: sum(v) / len(v) for c, v in sorted(acc.items())}


def chance(kind, data):
    """The score of a probe that ignores its input: the training set's majority label, or its
    mean box."""
    y = data["train"].y
    if kind == "binary":
        guess = float(y.mean() >= 0.5)
        score = {s: (data[s].y == guess).float().mean().item() for s in ("val", "test")}
    else:
        mean = y.mean(0, keepdim=True)
        score = {s: (iou_and_giou(mean.expand_as(data[s].y), data[s].y)[0] >= 0.5).float().mean().item()
                 for s in ("val", "test")}
    return {"task": None, "mode": "chance", "head": "-", "layer": "-", "lr": None, "epoch": None,
            "val": score["val"], "test": score["test"], "test_iou": None, "per_category": {}, "history": {}}


def run_task(task, model, preprocess, tokenizer, cfg, log=print):
    """All probe runs of one task. cfg: the `probe` config (heads, modes, layers, search)."""
    paths = list(dict.fromkeys(p for s in SPLITS for p in task.splits[s].images))
    rows = {p: i for i, p in enumerate(paths)}
    main_layer = FT.parse_layers(cfg.features.layer, model)[0]
    curve = FT.parse_layers(cfg.features.curve_layers, model) if cfg.features.curve_layers else []
    layers = list(dict.fromkeys([main_layer] + curve))
    t0 = time.time()
    tables, _ = FT.extract(model, preprocess, paths, layers, cfg.features.pooling)
    log(f"[probe] {task.name}: features of {len(paths)} images at layers {layers} in {time.time() - t0:.1f}s")
    txt, make_text, d_txt = text_side(task, cfg.features.text, model, tokenizer)
    kind = task.kind
    d_out = 1 if kind == "binary" else 4
    data = {s: SplitData(img=torch.tensor([rows[p] for p in task.splits[s].images]), txt=txt[s],
                         y=task.splits[s].targets, categories=task.splits[s].categories) for s in SPLITS}
    train_rows = data["train"].img.unique()
    s_cfg = cfg.search
    results = []

    def record(mode, head, layer, res):
        r = {"task": task.name, "mode": mode, "head": head, "layer": str(layer), "lr": res.lr,
             "epoch": res.epoch, "val": res.val, "test": res.test, "test_iou": res.test_iou,
             "per_category": per_category(res.test_correct, data["test"].categories),
             "history": {str(k): v for k, v in res.history.items()}}
        results.append(r)
        log(f"[probe] {task.name:5s} {mode:8s} {head:6s} layer {str(layer):5s} lr {res.lr:.0e} "
            f"epoch {res.epoch:3d} val {res.val:.4f} test {res.test:.4f}")

    def settings(lrs, max_epochs):
        return Settings(lrs=list(lrs), max_epochs=max_epochs, patience=s_cfg.patience,
                        batch_size=s_cfg.batch_size, weight_decay=s_cfg.weight_decay,
                        warmup=s_cfg.warmup, w_giou=cfg.box_loss.giou, w_l1=cfg.box_loss.l1, seed=cfg.seed)

    def frozen(layer, head):
        table = tables[layer]
        tr = table[train_rows]
        std = Standardize(tr.mean(0), tr.std(0))
        make = lambda: ProbeModel(Probe(head, table.shape[1], d_txt, d_out, cfg.hidden, cfg.rank),
                                  std, make_text(), table=table)
        record("frozen", head, layer, search(make, data, kind, settings(s_cfg.lrs_frozen, s_cfg.max_epochs)))

    results.append({**chance(kind, data), "task": task.name})
    if "frozen" in cfg.modes:
        for head in cfg.heads:
            frozen(main_layer, head)
        for layer in curve:
            if layer != main_layer:
                frozen(layer, "linear")

    if "unfrozen" in cfg.modes:
        tr = tables[main_layer][train_rows]
        std = Standardize(tr.mean(0), tr.std(0))
        px = None
        probe_px = FT.load_pixels(paths[:1], preprocess)
        if probe_px.numel() * 4 * len(paths) < PIXEL_CACHE_BYTES:
            px = FT.load_pixels(paths, preprocess)

        def make_joint(head):
            def make():
                bb = copy.deepcopy(model)
                for n, p in bb.named_parameters():
                    p.requires_grad = n.startswith("visual.")  # the image tower is what we probe
                return ProbeModel(Probe(head, tables[main_layer].shape[1], d_txt, d_out, cfg.hidden,
                                        cfg.rank),
                                  std, make_text(), backbone=bb, layer=main_layer,
                                  pooling=cfg.features.pooling, paths=paths, preprocess=preprocess,
                                  pixel_cache=px)
            return make

        for head in cfg.unfrozen_heads:
            unfrozen = settings(s_cfg.lrs_unfrozen, s_cfg.max_epochs_unfrozen)
            record("unfrozen", head, main_layer, search(make_joint(head), data, kind, unfrozen))
    return results
