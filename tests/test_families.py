"""Model families: detection from the model object, the sigmoid and captioning objectives
against brute-force float64 references and open_clip's own losses, and the whole step on tiny
random-init SigLIP and CoCa models against a reference composed from the formulas."""
import pytest
import torch
import torch.nn.functional as F

import dist_losses_lib as L
import family_lib as FL
from train import families
from train.accumulate import CachedFeatures
from train.losses_caption import caption_loss
from train.losses_siglip import hn_sigmoid_loss, sigmoid_pair_loss
from train.step import forward_losses


class Wrapper(torch.nn.Module):
    """Stands for DDP / DeepSpeed: the open_clip model is its .module."""
    def __init__(self, m):
        super().__init__()
        self.module = m

    def forward(self, *a, **k):
        return self.module(*a, **k)


@pytest.fixture(scope="module")
def tiny():
    return {f: FL.make_model(f) for f in FL.MODELS}


def test_detect_each_family_from_the_model(tiny):
    assert [families.detect(tiny[f][0]) for f in ("clip", "siglip", "coca")] == ["clip", "siglip", "coca"]
    assert families.detect(Wrapper(Wrapper(tiny["siglip"][0]))) == "siglip"
    # the logit_bias decides, not the name: a plain CLIP config given a bias is trained as SigLIP
    m, _ = FL.make_model("clip")
    m.logit_bias = torch.nn.Parameter(torch.tensor(-10.0, dtype=torch.float64))
    assert families.detect(m) == "siglip"


def test_unknown_family_is_a_clear_error():
    with pytest.raises(families.UnknownFamily, match=r"torch\.nn\.modules\.linear\.Linear is not a family"):
        families.detect(torch.nn.Linear(2, 2))

    class FourOutputs(torch.nn.Module):   # not open_clip, and not CLIP's call interface either
        def forward(self, image, text):
            return image, text, image.new_ones(()), image.new_zeros(())
    batch = {"pairs": {"images": torch.randn(3, 4), "tokens": torch.randn(3, 4)}}
    with pytest.raises(families.UnknownFamily, match="does not return CLIP's"):
        forward_losses(FourOutputs(), batch, FL.loss_cfg("siglip_softmax"))


def test_sigmoid_pair_loss_equals_brute_force_and_open_clip():
    from open_clip.loss import SigLipLoss
    g = torch.Generator().manual_seed(0)
    img_emb = F.normalize(torch.randn(7, 5, generator=g, dtype=torch.float64), dim=1)
    txt_emb = F.normalize(torch.randn(7, 5, generator=g, dtype=torch.float64), dim=1)
    tau, bias = torch.tensor(9.0, dtype=torch.float64), torch.tensor(-4.0, dtype=torch.float64)
    ours = sigmoid_pair_loss(img_emb, txt_emb, tau, bias)
    assert abs(float(ours) - FL.ref_sigmoid_pairs(img_emb, txt_emb, 9.0, -4.0)) < 1e-12
    assert abs(float(ours) - float(SigLipLoss()(img_emb, txt_emb, tau, bias))) < 1e-12
    # ranks: each holds some images against all captions; count-weighted they sum to the whole
    parts = [(0, 3), (3, 7)]
    split = sum(sigmoid_pair_loss(img_emb[a:b], txt_emb, tau, bias, offset=a) * (b - a) / 7 for a, b in parts)
    assert abs(float(split) - float(ours)) < 1e-12


def _as_ref_sets(idx):
    """Flat SetIndex -> the reference's list of sets (rows are the flat indices)."""
    sets = []
    for sid in range(int(idx.cap_set.max()) + 1):
        caps = [int(c) for c in (idx.cap_set == sid).nonzero().flatten()]
        imgs = [int(i) for i in (idx.img_set == sid).nonzero().flatten()]
        sets.append({"caps": [(c, int(idx.cap_key[c])) for c in caps],
                     "imgs": [(i, int(idx.img_key[i]), caps.index(int(idx.img_cap[i]))) for i in imgs]})
    return sets


@pytest.mark.parametrize("pool", ["set", "step", "step+pairs"])
@pytest.mark.parametrize("mask", [True, False])
def test_hn_sigmoid_equals_brute_force(pool, mask):
    g = torch.Generator().manual_seed(3)
    sets, img_emb, txt_emb = L.random_sets(g, 6, 8)
    idx, img_rows, cap_rows = L.flatten(sets)
    Iq, Tq = img_emb[img_rows], txt_emb[cap_rows]
    PI = F.normalize(torch.randn(4, 8, generator=g, dtype=torch.float64), dim=1)
    PT = F.normalize(torch.randn(4, 8, generator=g, dtype=torch.float64), dim=1)
    tau, bias = torch.tensor(7.0, dtype=torch.float64), torch.tensor(-3.0, dtype=torch.float64)
    kw = dict(pair_img_keys=PI, pair_cap_keys=PT) if pool == "step+pairs" else {}
    i2t, t2i = hn_sigmoid_loss(Iq, Tq, Iq, Tq, tau, bias, idx, pool=pool, mask_duplicates=mask, **kw)
    r_i2t, r_t2i = FL.ref_hn_sigmoid(Iq, Tq, _as_ref_sets(idx), 7.0, -3.0, pool, mask, PI, PT)
    assert abs(float(i2t) - r_i2t) < 1e-12 and abs(float(t2i) - r_t2i) < 1e-12
    # duplicates occur across sets (never within one), so masking changed something
    if mask and pool != "set":
        j2t, _ = hn_sigmoid_loss(Iq, Tq, Iq, Tq, tau, bias, idx, pool=pool, mask_duplicates=False, **kw)
        assert abs(float(j2t) - float(i2t)) > 1e-6


def test_caption_loss_equals_brute_force_and_open_clip():
    from open_clip.loss import CoCaLoss
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=g, dtype=torch.float64)
    labels = torch.tensor([[5, 3, 9, 0, 0, 0], [1, 2, 3, 4, 5, 6], [7, 0, 0, 0, 0, 0]])
    ours = float(caption_loss(logits, labels, pad_id=0))
    assert abs(ours - FL.ref_caption(logits, labels, 0)) < 1e-12
    _, theirs = CoCaLoss(caption_loss_weight=1.0, clip_loss_weight=0.0)(None, None, logits, labels, None)
    assert abs(ours - float(theirs)) < 1e-12


def _reference_step(family, model, batch, cfg):
    """The whole step's loss from the formulas, features from open_clip's own forward."""
    p, s = batch["pairs"], batch["sets"]
    with torch.no_grad():
        out = model(image=p["images"], text=p["tokens"])
        if family == "coca":
            pi, pt, tau = out["image_features"], out["text_features"], float(out["logit_scale"])
        else:
            pi, pt, tau = out[0], out[1], float(out[2])
        si = model.encode_image(s["images"], normalize=True)
        sc = model.encode_text(s["tokens"], normalize=True)
    from train.losses import SetIndex
    idx = SetIndex(*(s[k] for k in ("img_set", "img_cap", "img_key", "cap_set", "cap_img", "cap_key")))
    ref_sets = _as_ref_sets(idx)
    if family == "siglip":
        bias = float(model.logit_bias)
        l_pair = FL.ref_sigmoid_pairs(pi, pt, tau, bias)
    else:
        l_pair = L.ref_clip(pi, pt, tau)
    if cfg.hn_form == "sigmoid":
        i2t, t2i = FL.ref_hn_sigmoid(si, sc, ref_sets, tau, float(model.logit_bias), cfg.hn_negatives,
                                     cfg.mask_duplicates)
    else:
        i2t, t2i = L.ref_hn(si, sc, ref_sets, tau, cfg.hn_negatives, cfg.mask_duplicates)
        i2t, t2i = float(i2t), float(t2i)
    total = cfg.clip_weight * l_pair + cfg.hn_weight * (i2t + t2i)
    if family == "coca":
        total += cfg.caption_weight * FL.ref_caption(out["logits"], out["labels"], model.pad_id)
    return total, l_pair, i2t, t2i


@pytest.mark.parametrize("case", list(FL.CASES))
def test_whole_step_equals_reference(tiny, case):
    family = FL.CASES[case][0]
    model, tok = tiny[family]
    cfg = FL.loss_cfg(case)
    batch = FL.global_batch(case, tok)
    total, logs = forward_losses(model, batch, cfg)
    ref_total, ref_pair, ref_i2t, ref_t2i = _reference_step(family, model, batch, cfg)
    assert abs(float(logs["loss/clip"]) - ref_pair) < 1e-10
    assert abs(float(logs["loss/hn_i2t"]) - ref_i2t) < 1e-10
    assert abs(float(logs["loss/hn_t2i"]) - ref_t2i) < 1e-10
    assert abs(float(total) - ref_total) < 1e-10
    assert ("loss/caption" in logs) == (family == "coca")


def test_softmax_hard_negatives_ignore_the_bias_and_sigmoid_ones_do_not(tiny):
    model, tok = tiny["siglip"]
    batch = FL.global_batch("siglip_softmax", tok)
    runs = {}
    for bias in (-10.0, 0.0):
        with torch.no_grad():
            model.logit_bias.fill_(bias)
        runs[bias] = {form: forward_losses(model, batch, FL.loss_cfg(c))[1]
                      for form, c in (("softmax", "siglip_softmax"), ("sigmoid", "siglip_sigmoid"))}
    with torch.no_grad():
        model.logit_bias.fill_(-10.0)
    a, b = runs[-10.0]["softmax"], runs[0.0]["softmax"]
    assert abs(float(a["loss/hn_i2t"]) - float(b["loss/hn_i2t"])) < 1e-12
    assert abs(float(a["loss/clip"]) - float(b["loss/clip"])) > 1e-3      # the pair loss uses the bias
    a, b = runs[-10.0]["sigmoid"], runs[0.0]["sigmoid"]
    assert abs(float(a["loss/hn_i2t"]) - float(b["loss/hn_i2t"])) > 1e-3


def test_feature_cached_accumulation_refuses_other_families(tiny):
    model, tok = tiny["siglip"]
    batch = FL.global_batch("siglip_softmax", tok)
    n = batch["pairs"]["images"].shape[0]
    stand_in = CachedFeatures(model, torch.zeros(n, 128), torch.zeros(n, 128),
                              torch.arange(n), torch.arange(n), True)
    with pytest.raises(ValueError, match="optim.accum_steps=1"):
        forward_losses(stand_in, {"pairs": batch["pairs"]}, FL.loss_cfg("siglip_softmax"))


def test_random_init_coca_has_every_weight_initialised():
    # open_clip 3.3 leaves text_decoder.text_projection as torch.empty: whatever memory held
    from train import models
    projections = []
    for _ in range(2):
        torch.manual_seed(0)
        m = models.create("hnclip-tiny-coca")[0]
        projections.append(m.text_decoder.text_projection.detach().clone())
        assert all(torch.isfinite(p).all() for p in m.parameters())
    p = projections[0]
    assert torch.equal(projections[0], projections[1])                 # seeded, so reproducible
    assert abs(float(p.std()) / m.text_decoder.width ** -0.5 - 1) < 0.1  # the scale open_clip intends


@pytest.mark.parametrize("name,family", [("ViT-B-32", "clip"), ("ViT-L-14-quickgelu", "clip"),
                                         ("ViT-B-16-SigLIP", "siglip"), ("ViT-B-16-SigLIP2", "siglip"),
                                         ("ViT-SO400M-14-SigLIP", "siglip"), ("coca_ViT-B-32", "coca")])
def test_open_clips_own_members_are_detected(name, family):
    # built on the meta device: the real architectures, no weights, no download
    import open_clip
    with torch.device("meta"):
        m = open_clip.create_model(name, device="meta")
    assert families.detect(m) == family
