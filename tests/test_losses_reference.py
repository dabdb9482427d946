"""L_hn and L_clip against brute-force float64 references written from SPEC Eq. 6-8, gradcheck,
open_clip's ClipLoss at lambda = 0, and permutation invariance."""
from dataclasses import replace

import pytest
import torch
from open_clip.loss import ClipLoss

from dist_losses_lib import flatten, random_sets, ref_clip, ref_hn
from train.config import LossConfig
from train.losses import POOLS, clip_loss, hn_loss, set_diagnostics
from train.step import forward_losses

TAU = 7.0


def _impl(sets, img_emb, txt_emb, pool, mask, PI=None, PT=None, tau=TAU):
    idx, ir, cr = flatten(sets)
    i, t = img_emb[ir], txt_emb[cr]
    return hn_loss(i, t, i, t, torch.tensor(tau, dtype=img_emb.dtype), idx, pool=pool, mask_duplicates=mask,
                   pair_img_keys=PI, pair_cap_keys=PT)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("mask", [True, False])
def test_hn_matches_brute_force(seed, pool, mask):
    gen = torch.Generator().manual_seed(seed)
    sets, img_emb, txt_emb = random_sets(gen, n_sets=7, dim=16)
    assert {len(s["caps"]) for s in sets} != {len(sets[0]["caps"])}, "want mixed K"
    assert any(len(s["imgs"]) < len(s["caps"]) for s in sets), "want text-only captions"
    PI = torch.nn.functional.normalize(torch.randn(5, 16, generator=gen, dtype=torch.float64), dim=1)
    PT = torch.nn.functional.normalize(torch.randn(5, 16, generator=gen, dtype=torch.float64), dim=1)
    got = _impl(sets, img_emb, txt_emb, pool, mask, PI, PT)
    want = ref_hn(img_emb, txt_emb, sets, TAU, pool, mask, PI, PT)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, rtol=1e-12, atol=0), (g, w)


def test_duplicates_exist_and_masking_matters():
    # the masked/unmasked reference comparison above only means something if the random sets
    # hold cross-set duplicates and the mask changes the value
    gen = torch.Generator().manual_seed(0)
    sets, img_emb, txt_emb = random_sets(gen, n_sets=7, dim=16)
    on, off = _impl(sets, img_emb, txt_emb, "step", True), _impl(sets, img_emb, txt_emb, "step", False)
    assert not torch.allclose(on[0], off[0]) and not torch.allclose(on[1], off[1])
    # pool 'set' has no cross-set keys: masking cannot change it
    on, off = _impl(sets, img_emb, txt_emb, "set", True), _impl(sets, img_emb, txt_emb, "set", False)
    assert torch.allclose(on[0], off[0], rtol=1e-14) and torch.allclose(on[1], off[1], rtol=1e-14)


def test_sharded_queries_recombine_to_the_global_mean():
    # what each rank computes (its rows as queries, everything as keys, offsets) averaged with
    # the count weights of train/step.py equals the one-process loss
    gen = torch.Generator().manual_seed(3)
    sets, img_emb, txt_emb = random_sets(gen, n_sets=8, dim=8)
    idx, ir, cr = flatten(sets)
    i, t = img_emb[ir], txt_emb[cr]
    full = hn_loss(i, t, i, t, TAU, idx)
    n_i0 = sum(len(s["imgs"]) for s in sets[:3])
    n_c0 = sum(len(s["caps"]) for s in sets[:3])
    a = hn_loss(i[:n_i0], t[:n_c0], i, t, TAU, idx, 0, 0)
    b = hn_loss(i[n_i0:], t[n_c0:], i, t, TAU, idx, n_i0, n_c0)
    n = i.shape[0]
    for k in range(2):
        assert torch.allclose((a[k] * n_i0 + b[k] * (n - n_i0)) / n, full[k], rtol=1e-12)


@pytest.mark.parametrize("pool,mask", [("set", True), ("step", True), ("step", False), ("step+pairs", True)])
def test_hn_gradcheck(pool, mask):
    gen = torch.Generator().manual_seed(5)
    sets, img_emb, txt_emb = random_sets(gen, n_sets=3, dim=4, k_range=(2, 4), vocab=4)
    idx, ir, cr = flatten(sets)
    i = img_emb[ir].clone().requires_grad_()
    t = txt_emb[cr].clone().requires_grad_()
    pi = torch.randn(2, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    pt = torch.randn(2, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    n0 = len(sets[0]["imgs"])
    c0 = len(sets[0]["caps"])

    def f(i, t, pi, pt, scale):
        # queries are a "rank's" rows (offset), keys everything: both paths carry gradient
        return hn_loss(i[n0:], t[c0:], i, t, scale, idx, n0, c0, pool=pool, mask_duplicates=mask,
                       pair_img_keys=pi, pair_cap_keys=pt)
    assert torch.autograd.gradcheck(f, (i, t, pi, pt, scale), fast_mode=True)


def test_clip_gradcheck_and_brute_force():
    gen = torch.Generator().manual_seed(6)
    i = torch.randn(5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda i, t, s: clip_loss(i[2:], t[2:], i, t, s, 2), (i, t, scale))
    i_n = torch.nn.functional.normalize(i.detach(), dim=1)
    t_n = torch.nn.functional.normalize(t.detach(), dim=1)
    assert abs(float(clip_loss(i_n, t_n, i_n, t_n, 2.5)) - ref_clip(i_n, t_n, 2.5)) < 1e-12


class FeatureModel(torch.nn.Module):
    """Identity 'encoder': the batch's images and tokens are already the features."""
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, image, text):
        return image, text, self.scale


def _batch(gen, n_pairs=6, n_sets=4, dim=8, dtype=torch.float64):
    sets, img_emb, txt_emb = random_sets(gen, n_sets=n_sets, dim=dim, dtype=dtype)
    idx, ir, cr = flatten(sets)
    pi = torch.nn.functional.normalize(torch.randn(n_pairs, dim, generator=gen, dtype=dtype), dim=1)
    pt = torch.nn.functional.normalize(torch.randn(n_pairs, dim, generator=gen, dtype=dtype), dim=1)
    s = {"images": img_emb[ir], "tokens": txt_emb[cr],
         "img_set": idx.img_set, "img_cap": idx.img_cap, "img_key": idx.img_key,
         "cap_set": idx.cap_set, "cap_img": idx.cap_img, "cap_key": idx.cap_key}
    return {"pairs": {"images": pi, "tokens": pt}, "sets": s}


@pytest.mark.parametrize("with_sets", [False, True])
def test_lambda_zero_is_open_clip_clip_loss(with_sets):
    gen = torch.Generator().manual_seed(7)
    batch = _batch(gen)
    if not with_sets:
        del batch["sets"]
    scale = torch.tensor(1 / 0.07, dtype=torch.float64)
    total, logs = forward_losses(FeatureModel(scale), batch, replace(LossConfig(), hn_weight=0.0))
    want = ClipLoss()(batch["pairs"]["images"], batch["pairs"]["tokens"], scale)
    assert torch.allclose(total, want, rtol=1e-12, atol=0)
    if with_sets:
        assert logs["loss/hn_i2t"] > 0   # computed and logged, just not added


def test_sets_in_clip_loss_is_open_clip_on_the_extended_batch():
    gen = torch.Generator().manual_seed(8)
    batch = _batch(gen)
    scale = torch.tensor(1 / 0.07, dtype=torch.float64)
    total, _ = forward_losses(FeatureModel(scale), batch,
                              replace(LossConfig(), hn_weight=0.0, sets_in_clip_loss=True))
    s = batch["sets"]
    imgs = torch.cat([batch["pairs"]["images"], s["images"]])
    caps = torch.cat([batch["pairs"]["tokens"], s["tokens"][s["img_cap"]]])
    assert torch.allclose(total, ClipLoss()(imgs, caps, scale), rtol=1e-12, atol=0)


def test_total_is_clip_plus_lambda_hn():
    gen = torch.Generator().manual_seed(9)
    batch = _batch(gen)
    scale = torch.tensor(10.0, dtype=torch.float64)
    total, logs = forward_losses(FeatureModel(scale), batch, replace(LossConfig(), hn_weight=0.3))
    want = logs["loss/clip"] + 0.3 * (logs["loss/hn_i2t"] + logs["loss/hn_t2i"])
    assert torch.allclose(total, want, rtol=1e-14) and logs["loss/hn_t2i"] > 0


def _permute(sets, gen):
    """Shuffle set order and, inside each set, caption order and image order (links follow)."""
    out = []
    for a in torch.randperm(len(sets), generator=gen).tolist():
        s = sets[a]
        cperm = torch.randperm(len(s["caps"]), generator=gen).tolist()   # new position -> old
        new_pos = {old: new for new, old in enumerate(cperm)}
        imgs = [(r, k, new_pos[c]) for r, k, c in s["imgs"]]
        out.append({"caps": [s["caps"][o] for o in cperm],
                    "imgs": [imgs[m] for m in torch.randperm(len(imgs), generator=gen).tolist()]})
    return out


@pytest.mark.parametrize("pool", POOLS)
def test_permutation_invariance(pool):
    gen = torch.Generator().manual_seed(10)
    sets, img_emb, txt_emb = random_sets(gen, n_sets=6, dim=8)
    PI, PT = img_emb[:3].flip(1), txt_emb[:3].flip(1)
    base = _impl(sets, img_emb, txt_emb, pool, True, PI, PT)
    idx, ir, cr = flatten(sets)
    diag = set_diagnostics(img_emb[ir], txt_emb[cr], txt_emb[cr], img_emb[ir], idx)
    for _ in range(2):
        p = _permute(sets, gen)
        assert flatten(p)[1].tolist() != ir.tolist()
        got = _impl(p, img_emb, txt_emb, pool, True, PI, PT)
        for g, b in zip(got, base):
            assert torch.allclose(g, b, rtol=1e-13, atol=0)
        idx2, ir2, cr2 = flatten(p)
        d2 = set_diagnostics(img_emb[ir2], txt_emb[cr2], txt_emb[cr2], img_emb[ir2], idx2)
        for k in diag:
            assert torch.allclose(d2[k], diag[k], rtol=1e-13)
