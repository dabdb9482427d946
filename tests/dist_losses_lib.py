"""Shared by the loss tests and the two-process worker (tests/dist_losses_worker.py): random
candidate sets and a brute-force reference written straight from SPEC Eq. 6-8 (Python loops
over sets, items and keys, no vectorisation).

A set is a dict: caps = [(row in txt_emb, text key)], imgs = [(row in img_emb, image key, position of its
caption in caps)]. Captions without an image are text-only hard negatives."""
import math

import torch

from train.losses import SetIndex


def random_sets(gen, n_sets, dim, dtype=torch.float64, k_range=(2, 9), vocab=12):
    """Sets with K captions in k_range, 1..K of them with an image. Text and image keys come
    from a small vocabulary so identical captions/images across sets occur (duplicates)."""
    sets, n_img, n_cap = [], 0, 0
    for _ in range(n_sets):
        k = int(torch.randint(k_range[0], k_range[1] + 1, (1,), generator=gen))
        n_i = int(torch.randint(1, k + 1, (1,), generator=gen))
        text_keys = torch.randperm(vocab, generator=gen)[:k].tolist()   # distinct within a set
        with_img = sorted(torch.randperm(k, generator=gen)[:n_i].tolist())
        caps = [(n_cap + j, text_keys[j]) for j in range(k)]
        img_keys = (100 + torch.randperm(vocab, generator=gen)[:n_i]).tolist()  # distinct within a set
        imgs = [(n_img + j, img_keys[j], c) for j, c in enumerate(with_img)]
        sets.append({"caps": caps, "imgs": imgs})
        n_img, n_cap = n_img + n_i, n_cap + k
    img_emb = torch.nn.functional.normalize(torch.randn(n_img, dim, generator=gen, dtype=dtype), dim=1)
    txt_emb = torch.nn.functional.normalize(torch.randn(n_cap, dim, generator=gen, dtype=dtype), dim=1)
    return sets, img_emb, txt_emb


def flatten(sets):
    """-> SetIndex over rows in set order (the layout the batcher produces), plus the row order
    of images and captions (to index img_emb and txt_emb with)."""
    img_set, img_cap, img_key, cap_set, cap_img, cap_key, img_rows, cap_rows = ([] for _ in range(8))
    for sid, s in enumerate(sets):
        c0, i0 = len(cap_rows), len(img_rows)
        links = [-1] * len(s["caps"])
        for j, (row, key, cpos) in enumerate(s["imgs"]):
            img_rows.append(row), img_set.append(sid), img_cap.append(c0 + cpos), img_key.append(key)
            links[cpos] = i0 + j
        for row, key in s["caps"]:
            cap_rows.append(row), cap_set.append(sid), cap_key.append(key)
        cap_img.extend(links)
    t = lambda x: torch.tensor(x, dtype=torch.long)
    idx = SetIndex(t(img_set), t(img_cap), t(img_key), t(cap_set), t(cap_img), t(cap_key))
    return idx, t(img_rows), t(cap_rows)


def _s(a, b, tau):
    """Eq. 6: s(I, T) = exp(tau * cos(e_I, e_T))."""
    return torch.exp(tau * torch.dot(a, b) / (a.norm() * b.norm()))


def ref_hn(img_emb, txt_emb, sets, tau, pool, mask, PI=None, PT=None):
    """Eq. 7 and 8, mean over queries. Denominator = positive + hard negatives (the other
    members of the own set) + trivial negatives (pool 'set': none; 'step': every member of the
    other sets; 'step+pairs': those and the pair stream). With mask, a negative with the
    positive's text or the query image's content (or, T2I, the positive image's content or the
    query's text) is dropped."""
    cap_img_key = [{cpos: key for _, key, cpos in s["imgs"]} for s in sets]
    i2t, t2i = [], []
    for a, s in enumerate(sets):
        for i_row, i_key, cpos in s["imgs"]:
            t_row, t_key = s["caps"][cpos]
            num = _s(img_emb[i_row], txt_emb[t_row], tau)
            negs = [(b, j) for j in range(len(s["caps"])) if j != cpos for b in [a]]          # T^hn(i)
            if pool in ("step", "step+pairs"):
                negs += [(b, j) for b in range(len(sets)) if b != a for j in range(len(sets[b]["caps"]))]
            den = num
            for b, j in negs:
                row, key = sets[b]["caps"][j]
                if mask and (key == t_key or cap_img_key[b].get(j) == i_key):
                    continue
                den = den + _s(img_emb[i_row], txt_emb[row], tau)
            if pool == "step+pairs":
                for p in range(PT.shape[0]):
                    den = den + _s(img_emb[i_row], PT[p], tau)
            i2t.append(-torch.log(num / den))
        for i_row, i_key, cpos in s["imgs"]:       # T2I: only captions that have an image
            t_row, t_key = s["caps"][cpos]
            num = _s(img_emb[i_row], txt_emb[t_row], tau)
            negs = [(a, m) for m in range(len(s["imgs"])) if s["imgs"][m][2] != cpos]   # I^hn
            if pool in ("step", "step+pairs"):
                negs += [(b, m) for b in range(len(sets)) if b != a for m in range(len(sets[b]["imgs"]))]
            den = num
            for b, m in negs:
                row, key, c = sets[b]["imgs"][m]
                if mask and (key == i_key or sets[b]["caps"][c][1] == t_key):
                    continue
                den = den + _s(img_emb[row], txt_emb[t_row], tau)
            if pool == "step+pairs":
                for p in range(PI.shape[0]):
                    den = den + _s(PI[p], txt_emb[t_row], tau)
            t2i.append(-torch.log(num / den))
    return sum(i2t) / len(i2t), sum(t2i) / len(t2i)


def ref_clip(img_emb, txt_emb, tau):
    """Symmetric InfoNCE over pairs (row n of img_emb with row n of txt_emb), mean over rows,
    halved sum."""
    n, total = img_emb.shape[0], 0.0
    for q in range(n):
        pos = _s(img_emb[q], txt_emb[q], tau)
        total = total - math.log(float(pos / sum(_s(img_emb[q], txt_emb[k], tau) for k in range(n))))
        total = total - math.log(float(pos / sum(_s(img_emb[k], txt_emb[q], tau) for k in range(n))))
    return total / (2 * n)


def concat_rank_batches(parts):
    """Every rank's batch concatenated into what one process sees, set and item indices
    renumbered past the ranks before it."""
    out = {"pairs": {k: torch.cat([p["pairs"][k] for p in parts]) for k in ("images", "tokens")}}
    s, n_img, n_cap, n_set = {}, 0, 0, 0
    for p in parts:
        q = dict(p["sets"])
        q["img_set"], q["cap_set"] = q["img_set"] + n_set, q["cap_set"] + n_set
        q["img_cap"] = q["img_cap"] + n_cap
        q["cap_img"] = torch.where(q["cap_img"] >= 0, q["cap_img"] + n_img, q["cap_img"])
        n_img, n_cap = n_img + len(q["img_set"]), n_cap + len(q["cap_set"])
        n_set = int(q["cap_set"].max()) + 1
        for k, v in q.items():
            s.setdefault(k, []).append(v)
    out["sets"] = {k: torch.cat(v) for k, v in s.items()}
    return out
