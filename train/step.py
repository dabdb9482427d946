"""One training step's forward and losses: encode pairs and set items with one forward per
tower, gather across ranks with gradient, and combine L = L_clip + lambda * L_hn."""
import torch

from . import distributed as D
from .losses import SetIndex, clip_loss, hn_loss, set_diagnostics


def gather_set_index(sets, n_img_local, n_cap_local, device):
    """Gathered SetIndex with ranks' local indices shifted into the global numbering."""
    img_off = D.offset_of_rank(n_img_local, device)
    cap_off = D.offset_of_rank(n_cap_local, device)
    # set ids are made unique per rank by shifting with the rank's image offset (>= #sets)
    set_shift = img_off
    local = SetIndex(img_set=sets["img_set"] + set_shift, img_cap=sets["img_cap"] + cap_off,
                     img_key=sets["img_key"], cap_set=sets["cap_set"] + set_shift,
                     cap_img=torch.where(sets["cap_img"] >= 0, sets["cap_img"] + img_off, sets["cap_img"]),
                     cap_key=sets["cap_key"])
    gathered = SetIndex(*(D.gather_no_grad(t.to(device)) for t in
                          (local.img_set, local.img_cap, local.img_key, local.cap_set, local.cap_img, local.cap_key)))
    return gathered, img_off, cap_off


def with_pair_keys(idx: SetIndex, n_pair_img: int, n_pair_cap: int) -> SetIndex:
    """Append pair-stream items as keys: set id -1, no links, unique content ids never match."""
    dev = idx.img_set.device
    neg = lambda n: torch.full((n,), -1, dtype=torch.long, device=dev)
    uniq = lambda n: -2 - torch.arange(n, device=dev)
    return SetIndex(img_set=torch.cat([idx.img_set, neg(n_pair_img)]), img_cap=idx.img_cap,
                    img_key=torch.cat([idx.img_key, uniq(n_pair_img)]),
                    cap_set=torch.cat([idx.cap_set, neg(n_pair_cap)]),
                    cap_img=torch.cat([idx.cap_img, neg(n_pair_cap)]),
                    cap_key=torch.cat([idx.cap_key, uniq(n_pair_cap)]))


def forward_losses(model, batch, loss_cfg, device="cpu"):
    """-> (total loss tensor, dict of detached scalars for logging)."""
    pairs, sets = batch["pairs"], batch.get("sets")
    p_img, p_tok = pairs["images"].to(device, non_blocking=True), pairs["tokens"].to(device, non_blocking=True)
    n_pi, n_pc = p_img.shape[0], p_tok.shape[0]
    if sets is not None:
        images = torch.cat([p_img, sets["images"].to(device, non_blocking=True)])
        tokens = torch.cat([p_tok, sets["tokens"].to(device, non_blocking=True)])
    else:
        images, tokens = p_img, p_tok
    # one forward per tower for pairs and set items together (through DDP's forward)
    img_f, txt_f, logit_scale = model(image=images, text=tokens)[:3]
    img_f, txt_f = img_f.float(), txt_f.float()
    logs = {}

    pi, pt = img_f[:n_pi], txt_f[:n_pc]
    if sets is not None and loss_cfg.sets_in_clip_loss:
        # set items whose caption has an image join L_clip as ordinary pairs
        si, sc = img_f[n_pi:], txt_f[n_pc:]
        pi = torch.cat([pi, si])
        pt = torch.cat([pt, sc[sets["img_cap"].to(device)]])
    pi_all, pt_all = D.gather_with_grad(pi), D.gather_with_grad(pt)
    off = D.offset_of_rank(pi.shape[0], device)
    l_clip = clip_loss(pi, pt, pi_all, pt_all, logit_scale, off)
    total = loss_cfg.clip_weight * l_clip
    logs["loss/clip"] = l_clip.detach()

    if sets is not None:
        si, sc = img_f[n_pi:], txt_f[n_pc:]
        idx, img_off, cap_off = gather_set_index(sets, si.shape[0], sc.shape[0], device)
        si_all, sc_all = D.gather_with_grad(si), D.gather_with_grad(sc)
        if loss_cfg.hn_negatives == "step+pairs":
            idx_k = with_pair_keys(idx, pi_all.shape[0], pt_all.shape[0])
            si_keys, sc_keys = torch.cat([si_all, pi_all]), torch.cat([sc_all, pt_all])
        else:
            idx_k, si_keys, sc_keys = idx, si_all, sc_all
        l_i2t, l_t2i = hn_loss(si, sc, si_keys, sc_keys, logit_scale, idx_k, img_off, cap_off,
                               pool=loss_cfg.hn_negatives, mask_duplicates=loss_cfg.mask_duplicates)
        if loss_cfg.hn_weight > 0:
            total = total + loss_cfg.hn_weight * (l_i2t + l_t2i)
        logs["loss/hn_i2t"], logs["loss/hn_t2i"] = l_i2t.detach(), l_t2i.detach()
        logs.update(set_diagnostics(si.detach(), sc_all.detach(), sc.detach(), si_all.detach(), idx, img_off, cap_off))
    logs["loss/total"] = total.detach()
    logs["logit_scale"] = logit_scale.detach()
    return total, logs
