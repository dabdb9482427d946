"""Which loss each model family gets (train/families.py), for train/step.py.

    pair stream   clip, coca: InfoNCE (train/losses.clip_loss); siglip: the sigmoid pairwise loss
    hard negatives, loss.hn_form = softmax (default, SPEC Eq. 7-8, every family) | sigmoid
    captions      coca: + loss.caption_weight * captioning loss over the pair stream

In the softmax form a SigLIP model's logit_bias cancels (a constant added to every logit of a
softmax), so SPEC's term is the same function of the features for every family."""
import functools

import torch

from . import distributed as D
from .families import COCA, SIGLIP
from .losses import clip_loss, hn_loss
from .losses_caption import caption_loss, caption_token_count
from .losses_siglip import hn_sigmoid_loss, sigmoid_pair_loss

HN_FORMS = ("softmax", "sigmoid")


def pair_loss(enc, img_q, txt_q, img_keys, txt_keys, offset):
    """Mean over this rank's pairs of the family's pair objective (keys gathered with gradient)."""
    if enc.family == SIGLIP:
        return sigmoid_pair_loss(img_q, txt_keys, enc.logit_scale, enc.logit_bias, offset)
    return clip_loss(img_q, txt_q, img_keys, txt_keys, enc.logit_scale, offset)


def hn_loss_for(form: str, enc):
    """A callable with train.losses.hn_loss's signature computing L_hn in the chosen form."""
    if form not in HN_FORMS:
        raise ValueError(f"unknown loss.hn_form '{form}'; choose one of {HN_FORMS}")
    if form == "softmax":
        return hn_loss
    bias = enc.logit_bias if enc.logit_bias is not None else 0.0

    @functools.wraps(hn_sigmoid_loss)
    def sigmoid(img_q, cap_q, img_keys, cap_keys, logit_scale, idx, *args, **kwargs):
        return hn_sigmoid_loss(img_q, cap_q, img_keys, cap_keys, logit_scale, bias, idx, *args, **kwargs)
    return sigmoid


def caption_term(enc, device):
    """CoCa's captioning loss over the pair stream, already scaled to its share of the global
    token mean (one extra collective: every rank's token count). None for other families."""
    if enc.family != COCA:
        return None
    n_tok = caption_token_count(enc.caption_labels, enc.pad_id)
    counts = D.all_gather_counts([n_tok], device)
    n_global = sum(c[0] for c in counts)
    scale = n_tok * len(counts) / n_global if n_global else 1.0
    logits = enc.caption_logits if enc.caption_logits.dtype == torch.float64 else enc.caption_logits.float()
    return caption_loss(logits, enc.caption_labels, enc.pad_id) * scale
