"""One training step's forward and losses: encode pairs and set items with one forward per
tower, gather across ranks with gradient, and combine L = L_clip + lambda * L_hn."""
from contextlib import contextmanager

import torch

from . import distributed as D, families, objectives
from .losses import NonFiniteFeatures, SetIndex, check_set_index, set_diagnostics


def gather_set_index(sets, counts, device):
    """Gathered, checked SetIndex with every rank's local indices shifted into the global
    numbering (rank order, as gather_with_grad lays out the features). counts[r] is rank r's
    [L_clip rows, set images, set captions, sets, pairs]. Returns (index, image offset, caption offset)."""
    r = D.rank()
    img_off, cap_off, set_off = (sum(c[j] for c in counts[:r]) for j in (1, 2, 3))
    img_side = torch.stack([sets["img_set"] + set_off, sets["img_cap"] + cap_off, sets["img_key"]], 1)
    cap_img = torch.where(sets["cap_img"] >= 0, sets["cap_img"] + img_off, sets["cap_img"])
    cap_side = torch.stack([sets["cap_set"] + set_off, cap_img, sets["cap_key"]], 1)
    # non_blocking: a blocking host-to-device copy waits for the stream (a sync)
    img_side = D.gather_no_grad(img_side.to(device, non_blocking=True), [c[1] for c in counts])
    cap_side = D.gather_no_grad(cap_side.to(device, non_blocking=True), [c[2] for c in counts])
    idx = SetIndex(*img_side.unbind(1), *cap_side.unbind(1))
    # on the gathered index, so a bad set raises on every rank at once (none left waiting)
    check_set_index(idx)
    return idx, img_off, cap_off


def global_mean_scale(counts, j):
    """Factor turning this rank's mean into its share of the global mean: DDP and DeepSpeed
    average gradients over ranks, so rank r's loss must be mean_r * n_r * world / n_global.
    Exactly 1.0 when every rank holds the same count (the mixer's normal case)."""
    n_global = sum(c[j] for c in counts)
    return counts[D.rank()][j] * len(counts) / n_global if n_global else 1.0


def pair_rows(counts, device="cpu"):
    """Rows of the gathered L_clip features that are pair-stream items (with
    sets_in_clip_loss each rank's set items follow its pairs there; they must not be keys twice)."""
    starts = [sum(c[0] for c in counts[:r]) for r in range(len(counts))]
    return torch.cat([torch.arange(s, s + c[4], device=device) for s, c in zip(starts, counts)])


def n_sets_of(sets) -> int:
    """Sets in a step's collated set batch. The loader says (`n_sets`, no device read); a
    batch built by hand is counted from its index tensors."""
    if "n_sets" in sets:
        return sets["n_sets"]
    return 1 + max([int(sets[k].max()) for k in ("img_set", "cap_set") if sets[k].numel()] or [-1])


@contextmanager
def _say_which_rank(counts):
    """Bad-input errors are raised on gathered data (so every rank raises together) and so
    count rows and sets over all ranks; add each rank's share so the user can find the data."""
    try:
        yield
    except (ValueError, NonFiniteFeatures) as e:
        share = "; ".join(f"rank {r}: {c[4]} pairs, {c[1]} set images, {c[2]} set captions, {c[3]} sets"
                          for r, c in enumerate(counts))
        raise type(e)(f"{e} [rows and set ids count over all ranks in rank order: {share}]") from e


def forward_losses(model, batch, loss_cfg, device="cpu"):
    """-> (total loss tensor, dict of detached scalars for logging)."""
    pairs, sets = batch["pairs"], batch.get("sets")
    p_img = pairs["images"].to(device, non_blocking=True)
    p_tok = pairs["tokens"].to(device, non_blocking=True)
    n_pi, n_pc = p_img.shape[0], p_tok.shape[0]
    if sets is not None:
        images = torch.cat([p_img, sets["images"].to(device, non_blocking=True)])
        tokens = torch.cat([p_tok, sets["tokens"].to(device, non_blocking=True)])
    else:
        images, tokens = p_img, p_tok
    # one forward per tower for pairs and set items together (through DDP's forward)
    # the family (CLIP, SigLIP, CoCa: train/families.py) decides the pair and caption objectives
    enc = families.encode(model, images, tokens, n_caption=n_pi)
    img_f, txt_f, logit_scale = enc.image, enc.text, enc.logit_scale
    # the losses run in fp32 at least (bf16 logits lose the hard negatives' small margins);
    # float64 stays float64 (the exactness tests run there)
    img_f, txt_f = (f if f.dtype == torch.float64 else f.float() for f in (img_f, txt_f))
    logs = {}

    pi, pt = img_f[:n_pi], txt_f[:n_pc]
    si, sc = img_f[n_pi:], txt_f[n_pc:]
    if sets is not None and loss_cfg.sets_in_clip_loss:
        # set items (each image with its own caption) join L_clip as ordinary pairs
        pi = torch.cat([pi, si])
        pt = torch.cat([pt, sc[sets["img_cap"].to(device, non_blocking=True)]])
    n_sets = n_sets_of(sets) if sets is not None else 0
    # one collective for every count of the step: gather sizes, offsets and loss scales
    counts = D.all_gather_counts([pi.shape[0], si.shape[0], sc.shape[0], n_sets, n_pi], device)
    with _say_which_rank(counts):
        pi_all = D.gather_with_grad(pi, [c[0] for c in counts])
        pt_all = D.gather_with_grad(pt, [c[0] for c in counts])
        off = sum(c[0] for c in counts[:D.rank()])
        l_clip = objectives.pair_loss(enc, pi, pt, pi_all, pt_all, off) * global_mean_scale(counts, 0)
        total = loss_cfg.clip_weight * l_clip
        logs["loss/clip"] = l_clip.detach()
        l_cap = objectives.caption_term(enc, device)
        if l_cap is not None:
            total = total + loss_cfg.caption_weight * l_cap
            logs["loss/caption"] = l_cap.detach()

        if sets is not None:
            idx, img_off, cap_off = gather_set_index(sets, counts, device)
            si_all = D.gather_with_grad(si, [c[1] for c in counts])
            sc_all = D.gather_with_grad(sc, [c[2] for c in counts])
            pairs_as_keys = loss_cfg.hn_negatives == "step+pairs"
            l_i2t, l_t2i = objectives.hn_loss_for(loss_cfg.hn_form, enc)(
                                   si, sc, si_all, sc_all, logit_scale, idx, img_off, cap_off,
                                   pool=loss_cfg.hn_negatives, mask_duplicates=loss_cfg.mask_duplicates,
                                   pair_img_keys=pi_all[pair_rows(counts, device)] if pairs_as_keys else None,
                                   pair_cap_keys=pt_all[pair_rows(counts, device)] if pairs_as_keys else None)
            # I2T and T2I both have one query per set image (links are one-to-one)
            scale = global_mean_scale(counts, 1)
            l_i2t, l_t2i = l_i2t * scale, l_t2i * scale
            if loss_cfg.hn_weight > 0:
                total = total + loss_cfg.hn_weight * (l_i2t + l_t2i)
            logs["loss/hn_i2t"], logs["loss/hn_t2i"] = l_i2t.detach(), l_t2i.detach()
            logs.update(set_diagnostics(si.detach(), sc_all.detach(), sc.detach(), si_all.detach(), idx,
                                        img_off, cap_off))
    logs["loss/total"] = total.detach()
    logs["logit_scale"] = logit_scale.detach()
    return total, logs
