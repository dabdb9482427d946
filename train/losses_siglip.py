"""The sigmoid objectives (SigLIP: Zhai, Mustafa, Kolesnikov and Beyer, "Sigmoid Loss for
Language Image Pre-Training", 2023), as pure functions of tensors like train/losses.py.

Pair stream: every (image, caption) pair of the global batch is a binary decision,

    L_sig = 1/N * sum_i sum_j -log sigmoid(z_ij * (t * <x_i, y_j> + b)),   z_ij = +1 if i == j else -1

over the N pairs of all ranks, t = exp(logit_scale), b = logit_bias. open_clip's SigLipLoss
computes the same sum on each rank (its images against every rank's captions, received by
neighbour exchange) and divides by the local batch; here the captions arrive by one gather
with gradient, which gives the same terms and gradients, and the caller's usual count
scaling (train/step.py) keeps it exact when ranks hold different counts.

Hard negatives, sigmoid form: each query's positive is a positive pair and every key that
the softmax form would put in its denominator (the other members of its own set, the
trivial negatives of the pool, minus duplicates) is a negative pair. Same index contract
and masks as train/losses.hn_loss."""
import torch
import torch.nn.functional as F

from .losses import SetIndex, _key_mask, check_finite, hn_keys


def sigmoid_pair_loss(img_q, txt_keys, logit_scale, logit_bias, offset: int = 0):
    """This rank's images (rows [offset, offset+len) of the global batch) against every
    caption of the global batch. Sum over pairs / this rank's images."""
    check_finite(image_features=img_q, text_features=txt_keys)
    logits = logit_scale * img_q @ txt_keys.T + logit_bias
    sign = -torch.ones_like(logits)
    rows = torch.arange(img_q.shape[0], device=img_q.device)
    sign[rows, rows + offset] = 1.0
    return -F.logsigmoid(sign * logits).sum() / max(img_q.shape[0], 1)


def _valid_keys(q_set, key_set, pos, q_key, q_other_key, key_key, key_other_key, key_has_other, key_in_set,
                pool, mask_duplicates):
    """valid[q, k] as in hn_loss: the pool's keys, minus duplicates of the positive (same
    content on either side), the positive itself always in."""
    valid = _key_mask(q_set, key_set, pool)
    if mask_duplicates:
        same = (key_key[None, :] == q_other_key[:, None]) | \
            ((key_other_key[None, :] == q_key[:, None]) & key_has_other[None, :])
        valid &= ~(same & key_in_set[None, :])
    valid[torch.arange(pos.shape[0], device=pos.device), pos] = True
    return valid


def _sigmoid_terms(logits, valid, pos):
    """Mean over queries of: -log sigmoid(positive) - sum over valid negatives log sigmoid(-logit)."""
    sign = -torch.ones_like(logits)
    rows = torch.arange(pos.shape[0], device=pos.device)
    sign[rows, pos] = 1.0
    terms = (-F.logsigmoid(sign * logits)).masked_fill(~valid, 0.0)
    # 0 (not NaN) for a rank without queries, still wired to the gathered keys (a collective's backward)
    return terms.sum() / max(pos.shape[0], 1)


def hn_sigmoid_loss(img_q, cap_q, img_keys, cap_keys, logit_scale, logit_bias, idx: SetIndex,
                    img_offset: int = 0, cap_offset: int = 0, pool: str = "step",
                    mask_duplicates: bool = True, pair_img_keys=None, pair_cap_keys=None):
    """Sigmoid form of L_hn: returns (L_i2t, L_t2i), each a mean over this rank's queries.
    Arguments as train.losses.hn_loss, plus logit_bias (0 for a model without one)."""
    keys = hn_keys(img_q, cap_q, img_keys, cap_keys, idx, img_offset, cap_offset, pool,
                   pair_img_keys, pair_cap_keys)
    idx, img_keys, cap_keys, gi, gc = keys.idx, keys.img_keys, keys.cap_keys, keys.gi, keys.gc
    cap_has_img, img_in_set = keys.cap_has_img, keys.img_in_set
    cap_img_key, img_cap_key = keys.cap_img_key, keys.img_cap_key

    # image -> text: a caption key is a duplicate if it has the positive's text or describes
    # the query image
    pos_c = idx.img_cap[gi]
    valid = _valid_keys(idx.img_set[gi], idx.cap_set, pos_c,
                        q_key=idx.img_key[gi], q_other_key=idx.cap_key[pos_c],
                        key_key=idx.cap_key, key_other_key=cap_img_key, key_has_other=cap_has_img,
                        key_in_set=idx.cap_set >= 0,
                        pool=pool, mask_duplicates=mask_duplicates)
    l_i2t = _sigmoid_terms(logit_scale * img_q @ cap_keys.T + logit_bias, valid, pos_c)

    # text -> image, captions that have an image
    cq = gc[cap_has_img[gc]]
    pos_i = idx.cap_img[cq]
    valid = _valid_keys(idx.cap_set[cq], idx.img_set, pos_i,
                        q_key=idx.cap_key[cq], q_other_key=idx.img_key[pos_i],
                        key_key=idx.img_key, key_other_key=img_cap_key, key_has_other=img_in_set,
                        key_in_set=img_in_set,
                        pool=pool, mask_duplicates=mask_duplicates)
    l_t2i = _sigmoid_terms(logit_scale * cap_q[cap_has_img[gc]] @ img_keys.T + logit_bias, valid, pos_i)
    return l_i2t, l_t2i
