"""Box regression (the paper's RefCOCOg probe): predict the normalised box a phrase refers to.

Trained with (M)DETR's box loss, w_giou * (1 - GIoU) + w_l1 * L1, and scored as RefCOCOg is:
accuracy = share of predictions with IoU >= 0.5 against the annotated box."""
import math

import torch

from .common import SPLITS, Split, Task


def cxcywh_to_xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def iou_and_giou(a, b):
    """Element-wise IoU and generalised IoU (Rezatofighi et al. 2019) of xyxy boxes [..., 4]."""
    area_a = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)
    area_b = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    lt, rb = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area_a + area_b - inter
    iou = inter / union.clamp(min=1e-9)
    # the smallest box enclosing both: GIoU subtracts the share of it that neither box covers
    elt, erb = torch.minimum(a[..., :2], b[..., :2]), torch.maximum(a[..., 2:], b[..., 2:])
    enclose = (erb - elt).clamp(min=0).prod(-1)
    giou = iou - (enclose - union) / enclose.clamp(min=1e-9)
    return iou, giou


def box_loss(pred_xyxy, target_xyxy, w_giou=2.0, w_l1=5.0):
    _, giou = iou_and_giou(pred_xyxy, target_xyxy)
    return w_giou * (1 - giou).mean() + w_l1 * (pred_xyxy - target_xyxy).abs().sum(-1).mean()


def build(refs) -> Task:
    splits = {}
    for split in SPLITS:
        rs = [r for r in refs if r.split == split]
        centre_dist = [math.hypot(r.centre[0] - 0.5, r.centre[1] - 0.5) / math.sqrt(0.5) for r in rs]
        splits[split] = Split(
            images=[r.image for r in rs],
            texts=[r.phrase for r in rs],
            keys=[r.category for r in rs],
            targets=torch.tensor([r.box for r in rs], dtype=torch.float32).reshape(-1, 4),
            categories=[r.category for r in rs],
            area=[r.area for r in rs],
            distance=centre_dist,
        )
    return Task("boxes", "box", splits).check()
