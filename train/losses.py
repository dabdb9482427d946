"""The two losses, as pure functions of tensors: no ranks, no config, no I/O.

Distributed use: the caller passes this rank's query features and the *gathered* key
features (gathered with gradient, rank-ordered) plus the offset of its rows in them. With one
process the keys are the queries. Each loss is a mean over this rank's queries; the caller
scales it by `n_local * world / n_global` (train/step.py) so that DDP's gradient *averaging*
yields the gradient of the global-batch mean even when ranks hold different counts.

Candidate sets are described by flat index tensors over the step's (gathered) items:
    img_set[i]  set id of image i               cap_set[c]  set id of caption c
    img_cap[i]  index of image i's caption      cap_img[c]  index of caption c's image, -1 if none
    img_key[i]  content id of image i           cap_key[c]  content id of caption c's text
Sets may hold captions without images (text-only hard negatives). docs/loss.md has the formula.
"""
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F

POOLS = ("set", "step", "step+pairs")


class NonFiniteFeatures(FloatingPointError):
    """NaN/Inf features reached a loss. Raised identically on every rank (the check runs on
    gathered keys), so a caller may catch it and skip the step without a collective hang."""


@dataclass
class SetIndex:
    img_set: torch.Tensor
    img_cap: torch.Tensor
    img_key: torch.Tensor
    cap_set: torch.Tensor
    cap_img: torch.Tensor
    cap_key: torch.Tensor


# The input checks read values on the host, so each is a device sync. A training step whose
# set index the loader has already checked on the CPU, and which checks its loss for NaN/Inf
# itself (one flag collective), runs the losses inside trusted_inputs() and never waits.
_CHECK_INPUTS = ContextVar("hnclip_check_loss_inputs", default=True)


@contextmanager
def trusted_inputs():
    """Within this block check_finite and check_set_index return at once (no host sync)."""
    token = _CHECK_INPUTS.set(False)
    try:
        yield
    finally:
        _CHECK_INPUTS.reset(token)


def check_finite(**named):
    """Raise NonFiniteFeatures naming the first non-finite tensor. One host sync for all of
    them: a sum is non-finite iff some element is (normalised features cannot overflow it)."""
    if not _CHECK_INPUTS.get():
        return
    total = sum(t.detach().float().sum() for t in named.values())
    if bool(torch.isfinite(total)):
        return
    for name, t in named.items():
        bad = ~torch.isfinite(t.detach()).reshape(t.shape[0], -1).all(dim=1)
        if bad.any():
            raise NonFiniteFeatures(
                f"non-finite {name} reached the loss: {int(bad.sum())} of {t.shape[0]} rows hold "
                f"NaN or Inf (first row {int(bad.nonzero()[0])}); check the inputs and the weights")


def clip_loss(img_q, txt_q, img_keys, txt_keys, logit_scale, offset: int = 0):
    """Symmetric InfoNCE, open_clip's `local_loss` form: this rank's rows against all columns,
    labels offset by the rank's position. Memory O(local x global)."""
    check_finite(image_features=img_keys, text_features=txt_keys)
    labels = torch.arange(img_q.shape[0], device=img_q.device) + offset
    logits_i2t = logit_scale * img_q @ txt_keys.T
    logits_t2i = logit_scale * txt_q @ img_keys.T
    return (F.cross_entropy(logits_i2t, labels) + F.cross_entropy(logits_t2i, labels)) / 2


def check_set_index(idx: SetIndex, n_img: int = None, n_cap: int = None):
    """Raise ValueError for inconsistent set metadata (the data must be fixed, not the loss).
    About a dozen host reads: the loader runs it on each collated step's CPU tensors, and a
    direct caller of the losses on the *gathered* index (every rank raises together)."""
    if not _CHECK_INPUTS.get():
        return
    n_img = idx.img_set.shape[0] if n_img is None else n_img
    n_cap = idx.cap_set.shape[0] if n_cap is None else n_cap
    if not (idx.img_cap.shape[0] == idx.img_key.shape[0] == n_img):
        raise ValueError(f"candidate sets: {n_img} images but {idx.img_cap.shape[0]} image->caption links")
    if not (idx.cap_img.shape[0] == idx.cap_key.shape[0] == n_cap):
        raise ValueError(f"candidate sets: {n_cap} captions but {idx.cap_img.shape[0]} caption->image links")
    if n_img and (idx.img_cap.min() < 0 or idx.img_cap.max() >= n_cap):
        bad = int(((idx.img_cap < 0) | (idx.img_cap >= n_cap)).nonzero()[0])
        raise ValueError(f"candidate set {int(idx.img_set[bad])}: image {bad} names caption "
                         f"{int(idx.img_cap[bad])}, outside the {n_cap} captions of the step")
    if n_img and (idx.cap_set[idx.img_cap] != idx.img_set).any():
        bad = int((idx.cap_set[idx.img_cap] != idx.img_set).nonzero()[0])
        raise ValueError(f"candidate set {int(idx.img_set[bad])}: image {bad}'s caption index "
                         f"{int(idx.img_cap[bad])} lies outside its set "
                         f"(in set {int(idx.cap_set[idx.img_cap[bad]])})")
    has_img = idx.cap_img >= 0
    if (idx.cap_img >= n_img).any() or (idx.cap_img < -1).any():
        raise ValueError("candidate sets: a caption's image index lies outside the images")
    if n_img and (idx.cap_img[idx.img_cap] != torch.arange(n_img, device=idx.img_cap.device)).any() \
            or (idx.img_cap[idx.cap_img[has_img]] != has_img.nonzero().flatten()).any():
        raise ValueError("candidate sets: image->caption and caption->image links disagree "
                         "(two images share one caption, or a link points the wrong way)")
    if (idx.img_set < 0).any() or (idx.cap_set < 0).any():
        raise ValueError("candidate sets: negative set id (-1 is reserved for pair-stream keys)")
    sets, counts = torch.unique(idx.cap_set, return_counts=True)
    if (counts < 2).any():
        raise ValueError(f"candidate set {int(sets[counts < 2][0])} has {int(counts[counts < 2][0])} "
                         f"caption(s); a set needs at least 2 (a positive and a hard negative)")


def _key_mask(query_set, key_set, pool: str):
    """valid[q, k]: may key k appear in query q's denominator at all (before de-duplication)."""
    if pool == "set":
        return query_set[:, None] == key_set[None, :]
    if pool == "step":
        return (key_set >= 0)[None, :].expand(query_set.shape[0], -1).clone()
    return torch.ones(query_set.shape[0], key_set.shape[0], dtype=torch.bool, device=key_set.device)


def _append_pairs(idx: SetIndex, n_pi: int, n_pc: int) -> SetIndex:
    """Pair-stream items as extra keys: set id -1, no links, content ids that match nothing."""
    dev = idx.img_set.device
    neg = lambda n: torch.full((n,), -1, dtype=torch.long, device=dev)
    uniq = lambda n: -2 - torch.arange(n, device=dev)
    return SetIndex(img_set=torch.cat([idx.img_set, neg(n_pi)]), img_cap=torch.cat([idx.img_cap, neg(n_pi)]),
                    img_key=torch.cat([idx.img_key, uniq(n_pi)]),
                    cap_set=torch.cat([idx.cap_set, neg(n_pc)]), cap_img=torch.cat([idx.cap_img, neg(n_pc)]),
                    cap_key=torch.cat([idx.cap_key, uniq(n_pc)]))


@dataclass
class HnKeys:
    """What both hard-negative losses (softmax and sigmoid form) start from: the checked keys
    (with the pair stream appended for pool 'step+pairs'), their index, the global rows of
    this rank's queries (gi: images, gc: captions) and the per-key links."""
    idx: SetIndex
    img_keys: torch.Tensor
    cap_keys: torch.Tensor
    gi: torch.Tensor
    gc: torch.Tensor
    cap_has_img: torch.Tensor
    img_in_set: torch.Tensor
    cap_img_key: torch.Tensor
    img_cap_key: torch.Tensor


def hn_keys(img_q, cap_q, img_keys, cap_keys, idx: SetIndex, img_offset: int, cap_offset: int, pool: str,
            pair_img_keys=None, pair_cap_keys=None) -> HnKeys:
    """The input checks and key layout of hn_loss and losses_siglip.hn_sigmoid_loss (same
    arguments as those)."""
    if pool not in POOLS:
        raise ValueError(f"unknown negative pool '{pool}'; choose one of {POOLS}")
    check_finite(set_image_features=img_keys, set_text_features=cap_keys)
    if pool == "step+pairs":
        if pair_img_keys is None or pair_cap_keys is None:
            raise ValueError("pool 'step+pairs' needs the pair stream's features "
                             "(pair_img_keys, pair_cap_keys)")
        check_finite(pair_image_features=pair_img_keys, pair_text_features=pair_cap_keys)
        idx = _append_pairs(idx, pair_img_keys.shape[0], pair_cap_keys.shape[0])
        img_keys, cap_keys = torch.cat([img_keys, pair_img_keys]), torch.cat([cap_keys, pair_cap_keys])
    dev = img_q.device
    gi = torch.arange(img_q.shape[0], device=dev) + img_offset
    gc = torch.arange(cap_q.shape[0], device=dev) + cap_offset
    cap_has_img = idx.cap_img >= 0
    img_in_set = idx.img_set >= 0
    # content id of the *other side* of each key: the image a caption describes, the text of
    # an image's caption; -1 where there is none (text-only caption, pair item)
    cap_img_key = torch.where(cap_has_img, idx.img_key[idx.cap_img.clamp(min=0)], -1)
    img_cap_key = torch.where(img_in_set, idx.cap_key[idx.img_cap.clamp(min=0)], -1)
    return HnKeys(idx, img_keys, cap_keys, gi, gc, cap_has_img, img_in_set, cap_img_key, img_cap_key)


def hn_loss(img_q, cap_q, img_keys, cap_keys, logit_scale, idx: SetIndex,
            img_offset: int = 0, cap_offset: int = 0, pool: str = "step",
            mask_duplicates: bool = True, pair_img_keys=None, pair_cap_keys=None):
    """SPEC Eq. 7-8. Returns (L_i2t, L_t2i), each a mean over this rank's queries.

    img_keys/cap_keys: all candidate-set images/captions of the step (rank-ordered), idx their
    index; img_q are rows [img_offset, img_offset+len) of img_keys, cap_q likewise. Pool
    'step+pairs' also needs the step's pair-stream features (pair_img_keys, pair_cap_keys).
    I2T: every image is a query over captions. T2I: every caption *with an image* is a query
    over images; text-only captions are only I2T negatives. Inside trusted_inputs() no
    host sync (the input check is the only one)."""
    keys = hn_keys(img_q, cap_q, img_keys, cap_keys, idx, img_offset, cap_offset, pool,
                   pair_img_keys, pair_cap_keys)
    idx, img_keys, cap_keys, gi, gc = keys.idx, keys.img_keys, keys.cap_keys, keys.gi, keys.gc
    cap_has_img, img_in_set = keys.cap_has_img, keys.img_in_set
    cap_img_key, img_cap_key = keys.cap_img_key, keys.img_cap_key
    dev = img_q.device

    # image -> text
    pos_c = idx.img_cap[gi]
    rows = torch.arange(gi.shape[0], device=dev)
    logits = logit_scale * img_q @ cap_keys.T
    valid = _key_mask(idx.img_set[gi], idx.cap_set, pool)
    if mask_duplicates:
        # a set caption with the positive's text, or describing an identical image, is no negative
        same_text = idx.cap_key[None, :] == idx.cap_key[pos_c][:, None]
        same_image = (cap_img_key[None, :] == idx.img_key[gi][:, None]) & cap_has_img[None, :]
        valid &= ~((same_text | same_image) & (idx.cap_set >= 0)[None, :])
    valid[rows, pos_c] = True
    l_i2t = _mean_ce(logits.masked_fill(~valid, float("-inf")), pos_c)

    # text -> image, only for captions that have an image. Every caption is scored and the
    # text-only ones weigh 0: selecting rows by a mask would make the host wait for the count.
    has = cap_has_img[gc]
    pos_i = idx.cap_img[gc].clamp(min=0)  # a text-only row points at image 0, then weighs 0
    rows = torch.arange(gc.shape[0], device=dev)
    logits = logit_scale * cap_q @ img_keys.T
    valid = _key_mask(idx.cap_set[gc], idx.img_set, pool)
    if mask_duplicates:
        same_image = idx.img_key[None, :] == idx.img_key[pos_i][:, None]
        same_text = img_cap_key[None, :] == idx.cap_key[gc][:, None]
        valid &= ~((same_image | same_text) & img_in_set[None, :])
    valid[rows, pos_i] = True
    ce = F.cross_entropy(logits.masked_fill(~valid, float("-inf")), pos_i, reduction="none")
    l_t2i = torch.where(has, ce, 0).sum() / has.sum().clamp(min=1)
    return l_i2t, l_t2i


def _mean_ce(logits, labels):
    """Mean cross-entropy that is 0 (not NaN) for a rank without queries and still depends on
    the gathered keys: every rank must run the gather's backward, a collective."""
    return F.cross_entropy(logits, labels, reduction="sum") / max(labels.shape[0], 1)


@torch.no_grad()
def set_diagnostics(img_q, cap_keys, cap_q, img_keys, idx: SetIndex, img_offset=0, cap_offset=0):
    """Per-step diagnostics over this rank's queries, own set only (the SPEC test):
    accuracy = share of queries whose positive scores strictly above every other member of
    its set; margin = mean cosine(positive) - cosine(hardest in-set negative). A query with no
    in-set negative (a T2I query from a one-image set) makes no decision and is left out;
    NaN when no query decides. Reduced on the device: no host sync (the trainer reads these
    with the other logged scalars)."""
    out = {}
    gi = torch.arange(img_q.shape[0], device=img_q.device) + img_offset
    gc = torch.arange(cap_q.shape[0], device=cap_q.device) + cap_offset
    has_img = idx.cap_img[gc] >= 0
    for name, q, keys, q_set, key_set, pos, is_query in (
            ("i2t", img_q, cap_keys, idx.img_set[gi], idx.cap_set, idx.img_cap[gi], None),
            ("t2i", cap_q, img_keys, idx.cap_set[gc], idx.img_set, idx.cap_img[gc].clamp(min=0), has_img)):
        sim = q @ keys.T
        rows = torch.arange(q.shape[0], device=q.device)
        pos_sim = sim[rows, pos]
        neg = sim.masked_fill(key_set[None, :] != q_set[:, None], float("-inf"))
        neg[rows, pos] = float("-inf")
        hardest = neg.max(dim=1).values
        decided = torch.isfinite(hardest) if is_query is None else torch.isfinite(hardest) & is_query
        margin = torch.where(decided, pos_sim - hardest, 0)
        n = decided.sum().to(sim.dtype)  # 0 / 0 is NaN: no decision this step
        out[f"hn/acc_{name}"] = ((margin > 0) & decided).sum().to(sim.dtype) / n
        out[f"hn/margin_{name}"] = margin.sum() / n
    return out
