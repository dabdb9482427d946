"""Shared by the family tests and their two-process worker: tiny random-init members of each
open_clip family (configs registered by the project in train/model_configs, shrunk from
open_clip's ViT-B-16-SigLIP and coca_ViT-B-32), deterministic per-rank batches of real
images and real tokenised captions, and brute-force references written from the formulas
(Python loops, no vectorisation)."""
import math

import torch

from dist_losses_lib import concat_rank_batches
from train import models
from train.config import LossConfig

MODELS = {"clip": "hnclip-tiny", "siglip": "hnclip-tiny-sigmoid", "coca": "hnclip-tiny-coca"}

# per case: model family, loss config changes, per-rank (pairs, [(K captions, images) per set])
CASES = {
    "siglip_softmax": ("siglip", {}, [(3, [(3, 3), (4, 2)]), (5, [(2, 2), (3, 1), (3, 3)])]),
    "siglip_sigmoid": ("siglip", {"hn_form": "sigmoid", "hn_weight": 0.5},
                       [(3, [(3, 3), (4, 2)]), (5, [(2, 2), (3, 1), (3, 3)])]),
    "coca": ("coca", {"caption_weight": 2.0}, [(3, [(3, 3), (4, 2)]), (5, [(2, 2), (3, 1), (3, 3)])]),
    # LoRA adapters (rank 4, both towers) on a tiny CLIP: only the adapters get gradients
    "clip_lora": ("clip", {}, [(3, [(3, 3), (4, 2)]), (5, [(2, 2), (3, 1), (3, 3)])]),
}


def make_model(family, dtype=torch.float64):
    torch.manual_seed(0)
    model, _, _, tokenizer = models.create(MODELS[family])
    return model.to(dtype), tokenizer


def make_case_model(case, dtype=torch.float64):
    """The case's model; LoRA cases get adapters whose B is random (as after some training:
    with B = 0 the gradient of A would be zero and prove nothing)."""
    model, tok = make_model(CASES[case][0], dtype)
    if case.endswith("_lora"):
        from types import SimpleNamespace

        from train import lora
        lora.apply(model, SimpleNamespace(enabled=True, rank=4, alpha=8.0, dropout=0.0,
                                          targets=["attn", "mlp"], towers=["image", "text"], layers=None))
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith(".B"):
                    p.copy_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model, tok


def captions(keys):
    # different lengths, so the captioning loss sees padding and ranks hold different token counts
    return [" ".join(["a photo of"] + [f"thing{k}"] * (1 + k % 4)) for k in keys]


def rank_batch(case, r, tokenizer, dtype=torch.float64):
    """Rank r's slice: the same key means the same pixels/caption on every rank."""
    n_pairs, shapes = CASES[case][2][r]
    g = torch.Generator().manual_seed(1000 + r)
    pixels = torch.randn(30, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=dtype)
    pair_keys = torch.randint(0, 30, (n_pairs,), generator=g)
    pairs = {"images": torch.randn(n_pairs, 3, 64, 64, generator=g, dtype=dtype),
             "tokens": tokenizer(captions(pair_keys.tolist()))}
    ix = {k: [] for k in ("img_set", "img_cap", "img_key", "cap_set", "cap_img", "cap_key")}
    for sid, (k, n_img) in enumerate(shapes):
        c0, i0 = len(ix["cap_set"]), len(ix["img_set"])
        text_keys = torch.randperm(12, generator=g)[:k].tolist()
        img_keys = torch.randperm(12, generator=g)[:n_img].tolist()
        with_img = torch.randperm(k, generator=g)[:n_img].tolist()   # the rest are text-only
        links = [-1] * k
        for j, c in enumerate(with_img):
            ix["img_set"].append(sid), ix["img_cap"].append(c0 + c), ix["img_key"].append(img_keys[j])
            links[c] = i0 + j
        ix["cap_set"] += [sid] * k
        ix["cap_key"] += text_keys
        ix["cap_img"] += links
    sets = {key: torch.tensor(v, dtype=torch.long) for key, v in ix.items()}
    sets["images"] = pixels[sets["img_key"]]
    sets["tokens"] = tokenizer(captions(sets["cap_key"].tolist()))
    return {"pairs": pairs, "sets": sets}


def global_batch(case, tokenizer, dtype=torch.float64):
    """The concatenation of every rank's slice, indices renumbered (what one process sees)."""
    parts = [rank_batch(case, r, tokenizer, dtype) for r in range(len(CASES[case][2]))]
    return concat_rank_batches(parts)


def loss_cfg(case):
    from dataclasses import replace
    return replace(LossConfig(), **CASES[case][1])


def _logit(a, b, tau, bias):
    return tau * float(torch.dot(a, b) / (a.norm() * b.norm())) + bias


def _neg_log_sigmoid(x):
    return math.log1p(math.exp(-x)) if x > 0 else -x + math.log1p(math.exp(x))


def ref_sigmoid_pairs(img_emb, txt_emb, tau, bias):
    """SigLIP: 1/N sum over all (i, j) of -log sigmoid(z_ij * (tau cos + b)), z = +1 on the diagonal."""
    n = img_emb.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(n):
            total += _neg_log_sigmoid((1 if i == j else -1) * _logit(img_emb[i], txt_emb[j], tau, bias))
    return total / n


def ref_hn_sigmoid(img_emb, txt_emb, sets, tau, bias, pool, mask, PI=None, PT=None):
    """Sigmoid form of L_hn: per query, the positive as a positive pair and every key the
    softmax form would put in the denominator (tests/dist_losses_lib.ref_hn) as a negative."""
    cap_img_key = [{cpos: key for _, key, cpos in s["imgs"]} for s in sets]
    i2t, t2i = [], []
    for a, s in enumerate(sets):
        for i_row, i_key, cpos in s["imgs"]:
            t_row, t_key = s["caps"][cpos]
            loss = _neg_log_sigmoid(_logit(img_emb[i_row], txt_emb[t_row], tau, bias))
            negs = [(a, j) for j in range(len(s["caps"])) if j != cpos]
            if pool in ("step", "step+pairs"):
                negs += [(b, j) for b in range(len(sets)) if b != a for j in range(len(sets[b]["caps"]))]
            for b, j in negs:
                row, key = sets[b]["caps"][j]
                if mask and (key == t_key or cap_img_key[b].get(j) == i_key):
                    continue
                loss += _neg_log_sigmoid(-_logit(img_emb[i_row], txt_emb[row], tau, bias))
            if pool == "step+pairs":
                for p in range(PT.shape[0]):
                    loss += _neg_log_sigmoid(-_logit(img_emb[i_row], PT[p], tau, bias))
            i2t.append(loss)
        for i_row, i_key, cpos in s["imgs"]:
            t_row, t_key = s["caps"][cpos]
            loss = _neg_log_sigmoid(_logit(img_emb[i_row], txt_emb[t_row], tau, bias))
            negs = [(a, m) for m in range(len(s["imgs"])) if s["imgs"][m][2] != cpos]
            if pool in ("step", "step+pairs"):
                negs += [(b, m) for b in range(len(sets)) if b != a for m in range(len(sets[b]["imgs"]))]
            for b, m in negs:
                row, key, c = sets[b]["imgs"][m]
                if mask and (key == i_key or sets[b]["caps"][c][1] == t_key):
                    continue
                loss += _neg_log_sigmoid(-_logit(img_emb[row], txt_emb[t_row], tau, bias))
            if pool == "step+pairs":
                for p in range(PI.shape[0]):
                    loss += _neg_log_sigmoid(-_logit(PI[p], txt_emb[t_row], tau, bias))
            t2i.append(loss)
    return sum(i2t) / len(i2t), sum(t2i) / len(t2i)


def ref_caption(logits, labels, pad_id):
    """Mean over non-padding label tokens of -log softmax(logits)[label]."""
    total, n = 0.0, 0
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            y = int(labels[b, t])
            if y == pad_id:
                continue
            row = logits[b, t]
            total += float(torch.logsumexp(row, 0) - row[y])
            n += 1
    return total / n
