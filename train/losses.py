"""The two losses, as pure functions of tensors: no ranks, no config, no I/O.

Distributed use: the caller passes this rank's query features and the *gathered* key
features (gathered with gradient, rank-ordered) plus the offset of its rows in them. With one
process the keys are the queries. Each loss is a mean over this rank's queries, so DDP's
gradient averaging over equal-sized ranks yields the gradient of the global-batch mean.

Candidate sets are described by flat index tensors over the step's (gathered) items:
    img_set[i]  set id of image i               cap_set[c]  set id of caption c (-1: pair caption)
    img_cap[i]  index of image i's caption      cap_img[c]  index of caption c's image, -1 if none
    img_key[i]  content id of image i           cap_key[c]  content id of caption c's text
Sets may hold captions without images (text-only hard negatives).
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

POOLS = ("set", "step", "step+pairs")


@dataclass
class SetIndex:
    img_set: torch.Tensor
    img_cap: torch.Tensor
    img_key: torch.Tensor
    cap_set: torch.Tensor
    cap_img: torch.Tensor
    cap_key: torch.Tensor


def clip_loss(img_q, txt_q, img_keys, txt_keys, logit_scale, offset: int = 0):
    """Symmetric InfoNCE, open_clip's `local_loss` form: this rank's rows against all columns,
    labels offset by the rank's position. Memory O(local x global)."""
    labels = torch.arange(img_q.shape[0], device=img_q.device) + offset
    logits_i2t = logit_scale * img_q @ txt_keys.T
    logits_t2i = logit_scale * txt_q @ img_keys.T
    return (F.cross_entropy(logits_i2t, labels) + F.cross_entropy(logits_t2i, labels)) / 2


def check_set_index(idx: SetIndex, n_img: int, n_cap: int):
    """Raise ValueError for inconsistent set metadata (the data must be fixed, not the loss)."""
    if idx.img_cap.numel() and (idx.img_cap.min() < 0 or idx.img_cap.max() >= n_cap):
        raise ValueError("candidate set: an image's caption index lies outside the captions")
    if (idx.cap_set[idx.img_cap] != idx.img_set).any():
        raise ValueError("candidate set: an image's caption index points into another set")
    has_img = idx.cap_img >= 0
    if has_img.any() and (idx.cap_img[has_img].max() >= n_img):
        raise ValueError("candidate set: a caption's image index lies outside the images")
    back = idx.img_cap[idx.cap_img[has_img]]
    if (back != torch.nonzero(has_img).flatten()).any():
        raise ValueError("candidate set: image->caption and caption->image links disagree")
    sets, counts = torch.unique(idx.cap_set[idx.cap_set >= 0], return_counts=True)
    if (counts < 2).any():
        raise ValueError(f"candidate set {int(sets[counts < 2][0])} has fewer than 2 captions")


def _check_finite(*tensors):
    for t in tensors:
        if not torch.isfinite(t).all():
            raise FloatingPointError("non-finite features reached the loss (NaN or Inf)")


def _key_mask(query_set, key_set, pool: str):
    """valid[q, k]: may key k appear in query q's denominator at all."""
    if pool == "set":
        return query_set[:, None] == key_set[None, :]
    if pool == "step":
        return (key_set >= 0)[None, :].expand(query_set.shape[0], -1)
    if pool == "step+pairs":
        return torch.ones(query_set.shape[0], key_set.shape[0], dtype=torch.bool, device=key_set.device)
    raise ValueError(f"unknown negative pool '{pool}'; choose one of {POOLS}")


def hn_loss(img_q, cap_q, img_keys, cap_keys, logit_scale, idx: SetIndex,
            img_offset: int = 0, cap_offset: int = 0, pool: str = "step",
            mask_duplicates: bool = True):
    """SPEC Eq. 7-8. Returns (L_i2t, L_t2i), each a mean over this rank's queries.

    img_keys/cap_keys: all images/captions of the step (rank-ordered). With pool 'step+pairs'
    they may end with pair-stream items, marked by set id -1 and no links (cap_img = -1).
    img_q are rows [img_offset, img_offset+len) of img_keys, cap_q likewise."""
    if pool not in POOLS:
        raise ValueError(f"unknown negative pool '{pool}'; choose one of {POOLS}")
    _check_finite(img_q, cap_q)
    n_img_q, n_cap_q = img_q.shape[0], cap_q.shape[0]
    gi = torch.arange(n_img_q, device=img_q.device) + img_offset
    gc = torch.arange(n_cap_q, device=img_q.device) + cap_offset
    cap_has_img = idx.cap_img >= 0
    cap_img_key = torch.where(cap_has_img, idx.img_key[idx.cap_img.clamp(min=0)], idx.img_key.new_full((), -1))
    img_cap_key = idx.cap_key[idx.img_cap]

    # image -> text
    pos_c = idx.img_cap[gi]
    logits = logit_scale * img_q @ cap_keys.T
    valid = _key_mask(idx.img_set[gi], idx.cap_set, pool)
    if mask_duplicates:
        # a caption with the positive's text, or describing an identical image, is no negative
        same_text = idx.cap_key[None, :] == idx.cap_key[pos_c][:, None]
        same_image = (cap_img_key[None, :] == idx.img_key[gi][:, None]) & cap_has_img[None, :]
        dup = (same_text | same_image) & (idx.cap_set >= 0)[None, :]
        valid = valid & ~dup
    valid[torch.arange(n_img_q), pos_c] = True
    l_i2t = F.cross_entropy(logits.masked_fill(~valid, float("-inf")), pos_c)

    # text -> image, only for captions that have an image
    q_mask = cap_has_img[gc]
    cq = gc[q_mask]
    pos_i = idx.cap_img[cq]
    logits = logit_scale * cap_q[q_mask] @ img_keys.T
    valid = _key_mask(idx.cap_set[cq], idx.img_set, pool)
    if mask_duplicates:
        same_image = idx.img_key[None, :] == idx.img_key[pos_i][:, None]
        same_text = img_cap_key[None, :] == idx.cap_key[cq][:, None]
        dup = (same_image | same_text) & (idx.img_set >= 0)[None, :]
        valid = valid & ~dup
    valid[torch.arange(cq.shape[0]), pos_i] = True
    l_t2i = F.cross_entropy(logits.masked_fill(~valid, float("-inf")), pos_i)
    return l_i2t, l_t2i


@torch.no_grad()
def set_diagnostics(img_q, cap_keys, cap_q, img_keys, idx: SetIndex, img_offset=0, cap_offset=0):
    """In-set accuracy (positive strictly beats every other member of its own set) for I2T and
    T2I, and the mean cosine margin between the positive and the hardest in-set negative."""
    gi = torch.arange(img_q.shape[0], device=img_q.device) + img_offset
    pos_c = idx.img_cap[gi]
    sim = img_q @ cap_keys.T
    in_set = idx.cap_set[None, :] == idx.img_set[gi][:, None]
    pos = sim[torch.arange(len(gi)), pos_c]
    neg = sim.masked_fill(~in_set, float("-inf"))
    neg[torch.arange(len(gi)), pos_c] = float("-inf")
    hardest = neg.max(dim=1).values
    acc_i2t = (pos > hardest).float().mean()
    margin_i2t = _finite_mean(pos - hardest)

    gc = torch.arange(cap_q.shape[0], device=cap_q.device) + cap_offset
    q_mask = idx.cap_img[gc] >= 0
    cq = gc[q_mask]
    pos_i = idx.cap_img[cq]
    sim = cap_q[q_mask] @ img_keys.T
    in_set = idx.img_set[None, :] == idx.cap_set[cq][:, None]
    pos = sim[torch.arange(len(cq)), pos_i]
    neg = sim.masked_fill(~in_set, float("-inf"))
    neg[torch.arange(len(cq)), pos_i] = float("-inf")
    hardest = neg.max(dim=1).values
    acc_t2i = (pos > hardest).float().mean()
    margin_t2i = _finite_mean(pos - hardest)  # a one-image set has no T2I negative
    return {"hn/acc_i2t": acc_i2t, "hn/acc_t2i": acc_t2i,
            "hn/margin_i2t": margin_i2t, "hn/margin_t2i": margin_t2i}


def _finite_mean(x):
    x = x[torch.isfinite(x)]
    return x.mean() if x.numel() else x.new_zeros(())
