"""Gradient accumulation that keeps the whole accumulated batch as negatives (open_clip's
feature caching).

Summing K micro-batch losses would give each micro-batch only its own items as negatives: the
contrastive loss of K small batches is not the loss of one big batch. Instead:
  1. encode every micro-batch without gradient and cache the features;
  2. for each micro-batch j, encode it again *with* gradient, put those rows into the cached
     features, compute the loss of the whole accumulated batch, backward.
Row r's gradient flows only in pass j(r), so the K backward passes sum to exactly the
gradient of the big-batch loss (chain rule over rows). The loss is computed by the project's
own `forward_losses` on the merged batch; it sees a model that returns the mixed features.

logit_scale enters every pass's loss; open_clip lets all K passes backprop into it (K times
its big-batch gradient). Here only the last pass does, so the gradient matches one big batch.
Before any backward, the loss of the whole step is computed once more from the cached features
alone, without gradient (`whole_step_loss`): every pass's loss has that value (the recomputed
rows equal the cached ones bit for bit), so the ranks can agree on a non-finite or raising loss
before the first backward, whose gathers are collectives that every rank must enter.
Cost: K+1 forwards of each micro-batch's encoders and K+1 loss computations per step."""
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from .step import forward_losses, n_sets_of


def merge_micro_batches(batches):
    """K loader steps -> one step {pairs, sets} with set indices renumbered, plus for each
    micro-batch the row indices of its images/tokens in forward_losses' concatenation
    (pairs first, then set items)."""
    pairs = [b["pairs"] for b in batches]
    merged = {"pairs": {"images": torch.cat([p["images"] for p in pairs]),
                        "tokens": torch.cat([p["tokens"] for p in pairs])}}
    skipped = {}
    for b in batches:
        for k, v in b.get("skipped", {}).items():
            skipped[k] = skipped.get(k, 0) + v
    merged["skipped"] = skipped
    n_pi = merged["pairs"]["images"].shape[0]
    n_pc = merged["pairs"]["tokens"].shape[0]
    has_sets = all("sets" in b for b in batches)
    if has_sets:
        merged["sets"] = merge_sets([b["sets"] for b in batches])

    img_rows, txt_rows = [], []
    pi0 = pc0 = si0 = sc0 = 0
    for b in batches:
        npi, npc = b["pairs"]["images"].shape[0], b["pairs"]["tokens"].shape[0]
        rows_i = [torch.arange(pi0, pi0 + npi)]
        rows_t = [torch.arange(pc0, pc0 + npc)]
        pi0, pc0 = pi0 + npi, pc0 + npc
        if has_sets:
            nsi, nsc = b["sets"]["images"].shape[0], b["sets"]["tokens"].shape[0]
            rows_i.append(n_pi + torch.arange(si0, si0 + nsi))
            rows_t.append(n_pc + torch.arange(sc0, sc0 + nsc))
            si0, sc0 = si0 + nsi, sc0 + nsc
        img_rows.append(torch.cat(rows_i))
        txt_rows.append(torch.cat(rows_t))
    return merged, img_rows, txt_rows


def merge_sets(sets):
    out = {"images": torch.cat([s["images"] for s in sets]),
           "tokens": torch.cat([s["tokens"] for s in sets]),
           "subsets": [x for s in sets for x in s.get("subsets", [])]}
    parts = {k: [] for k in ("img_set", "img_cap", "img_key", "cap_set", "cap_img", "cap_key")}
    n_sets = n_img = n_cap = 0
    for s in sets:
        parts["img_set"].append(s["img_set"] + n_sets)
        parts["cap_set"].append(torch.where(s["cap_set"] >= 0, s["cap_set"] + n_sets, s["cap_set"]))
        parts["img_cap"].append(s["img_cap"] + n_cap)
        parts["cap_img"].append(torch.where(s["cap_img"] >= 0, s["cap_img"] + n_img, s["cap_img"]))
        parts["img_key"].append(s["img_key"])
        parts["cap_key"].append(s["cap_key"])
        n_sets += n_sets_of(s)
        n_img += s["images"].shape[0]
        n_cap += s["tokens"].shape[0]
    out.update({k: torch.cat(v) for k, v in parts.items()})
    out["n_sets"] = n_sets
    return out


class CachedFeatures:
    """Stands in for the model inside forward_losses: encodes only micro-batch j (with
    gradient) and returns the cached features of the accumulated batch with j's rows replaced."""

    def __init__(self, model, img_cache, txt_cache, img_rows, txt_rows, scale_grad: bool):
        self.model, self.img_cache, self.txt_cache = model, img_cache, txt_cache
        self.img_rows, self.txt_rows, self.scale_grad = img_rows, txt_rows, scale_grad

    def __call__(self, image, text):
        rows_i = self.img_rows.to(image.device, non_blocking=True)  # blocking would wait for the stream
        rows_t = self.txt_rows.to(text.device, non_blocking=True)
        img_j, txt_j, scale = self.model(image=image[rows_i], text=text[rows_t])[:3]
        img = self.img_cache.index_put((rows_i,), img_j.to(self.img_cache.dtype))
        txt = self.txt_cache.index_put((rows_t,), txt_j.to(self.txt_cache.dtype))
        return img, txt, scale if self.scale_grad else scale.detach()


@torch.no_grad()
def encode_all(model, merged, img_rows, txt_rows, device):
    """Pass 1: features of every micro-batch, no gradient, micro-batch by micro-batch (the
    same shapes as pass 2, so the cached rows equal the recomputed ones bit for bit)."""
    images, tokens = _inputs(merged, device)
    img_cache = txt_cache = None
    for rows_i, rows_t in zip(img_rows, txt_rows):
        rows_i, rows_t = rows_i.to(device, non_blocking=True), rows_t.to(device, non_blocking=True)
        f_i, f_t, scale = model(image=images[rows_i], text=tokens[rows_t])[:3]
        if img_cache is None:
            img_cache = f_i.new_zeros((images.shape[0], f_i.shape[1]))
            txt_cache = f_t.new_zeros((tokens.shape[0], f_t.shape[1]))
        img_cache[rows_i], txt_cache[rows_t] = f_i, f_t
    return img_cache, txt_cache, scale


def _inputs(merged, device):
    p, s = merged["pairs"], merged.get("sets")
    images, tokens = p["images"], p["tokens"]
    if s is not None:
        images, tokens = torch.cat([images, s["images"]]), torch.cat([tokens, s["tokens"]])
    return images.to(device, non_blocking=True), tokens.to(device, non_blocking=True)


@dataclass
class Prepared:
    """A step's micro-batches merged and encoded once without gradient (pass 1)."""
    model: object
    merged: dict
    img_rows: list
    txt_rows: list
    img_cache: torch.Tensor
    txt_cache: torch.Tensor
    scale: torch.Tensor


def prepare(model, batches, device, autocast=nullcontext) -> Prepared:
    merged, img_rows, txt_rows = merge_micro_batches(batches)
    with autocast():
        img_cache, txt_cache, scale = encode_all(model, merged, img_rows, txt_rows, device)
    return Prepared(model, merged, img_rows, txt_rows, img_cache, txt_cache, scale)


class CachedOnly:
    """Stands in for the model: the cached features of the whole accumulated batch, no encoder
    run. `model` is there for families.encode's check of what it wraps."""

    def __init__(self, prepared: Prepared):
        self.model, self.prepared = prepared.model, prepared

    def __call__(self, image, text):
        p = self.prepared
        return p.img_cache, p.txt_cache, p.scale.detach()


@torch.no_grad()
def whole_step_loss(prepared: Prepared, loss_cfg, device, autocast=nullcontext):
    """-> (loss, logs) of the whole accumulated batch from the cached features, no gradient:
    the value every pass's loss will have. A FloatingPointError from the loss propagates."""
    with autocast():
        return forward_losses(CachedOnly(prepared), prepared.merged, loss_cfg, device)


def accumulated_passes(model, batches, loss_cfg, device, autocast=nullcontext, no_sync=None,
                       prepared: Prepared = None):
    """Yield (j, loss_j, logs) for each micro-batch; the caller runs backward on loss_j before
    asking for the next one. no_sync(model) is entered for all passes but the last (DDP then
    all-reduces gradients once per step). `prepared`: pass 1 already run (prepare())."""
    p = prepared or prepare(model, batches, device, autocast)
    k = len(batches)
    for j in range(k):
        last = j == k - 1
        stand_in = CachedFeatures(model, p.img_cache, p.txt_cache, p.img_rows[j], p.txt_rows[j],
                                  scale_grad=last)
        ctx = no_sync(model) if (no_sync is not None and not last) else nullcontext()
        with ctx:
            with autocast():
                loss, logs = forward_losses(stand_in, p.merged, loss_cfg, device)
            yield j, loss, logs
