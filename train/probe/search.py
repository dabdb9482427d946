"""Train one probe, and pick its learning rate and epoch count on validation.

The paper tunes lr and epochs by Bayesian search and reports the test score of the best
validation model; here a small grid of learning rates, each trained up to `max_epochs` with
early stopping (patience in epochs). The epoch with the best validation score is the chosen
epoch count, and its weights are the ones scored on test. Optimiser as in the paper's
Appendix B: AdamW, weight decay 0.01, 10% linear warm-up (then cosine), batch 128."""
import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .features import image_features, load_pixels
from .heads import Standardize
from .tasks.boxes import box_loss, cxcywh_to_xyxy, iou_and_giou


@dataclass
class SplitData:
    img: torch.Tensor          # [N] row of the image (features table row / path index)
    txt: Optional[torch.Tensor]  # [N] text-table row, or [N, P] key ids (embed), or None
    y: torch.Tensor
    categories: List[str]


@dataclass
class Settings:
    """One search's settings. No defaults here: they are conf/probe.yaml's (search.*,
    box_loss.*, seed), and run.py passes every one."""
    lrs: List[float]
    max_epochs: int
    patience: int
    batch_size: int
    weight_decay: float
    warmup: float
    w_giou: float
    w_l1: float
    seed: int


@dataclass
class Result:
    lr: float
    epoch: int
    val: float
    test: float
    test_iou: Optional[float] = None
    test_correct: List[float] = field(default_factory=list)  # per test example: 1/0 (hit)
    history: Dict[float, List[float]] = field(default_factory=dict)  # lr -> val score per epoch


class ProbeModel(nn.Module):
    """image input -> standardised features -> (with the text side) -> head.

    Frozen: the image input is a row of a precomputed feature table. Joint: it is pixels,
    run through a trainable copy of the image tower up to `layer`."""

    def __init__(self, head, standardize: Standardize, text, table=None, backbone=None,
                 layer=None, pooling="flatten", paths=None, preprocess=None, pixel_cache=None):
        super().__init__()
        self.head, self.std, self.text = head, standardize, text
        self.backbone, self.layer, self.pooling = backbone, layer, pooling
        self.paths, self.preprocess, self.pixel_cache = paths, preprocess, pixel_cache
        if table is not None:
            self.register_buffer("table", table, persistent=False)
        else:
            self.table = None

    def image(self, rows):
        if self.table is not None:
            return self.table[rows]
        if self.pixel_cache is not None:
            px = self.pixel_cache[rows]
        else:
            px = load_pixels([self.paths[i] for i in rows.tolist()], self.preprocess)
        return image_features(self.backbone, px, [self.layer], self.pooling)[self.layer].float()

    def forward(self, rows, txt):
        x = self.std(self.image(rows))
        t = self.text(txt) if self.text is not None else None
        return self.head(x, t)


def predict_loss(kind, out, y, s: Settings):
    if kind == "binary":
        return F.binary_cross_entropy_with_logits(out.squeeze(-1), y)
    # sigmoid cx, cy, w, h keeps predictions inside the image and the box well-formed
    return box_loss(cxcywh_to_xyxy(out.sigmoid()), y, s.w_giou, s.w_l1)


@torch.no_grad()
def evaluate(model, data: SplitData, kind, batch_size=512):
    """(score, per-example hit list, mean IoU or None). Score: accuracy (binary) or the share
    of boxes with IoU >= 0.5 (RefCOCOg's accuracy)."""
    model.eval()
    hits, ious = [], []
    for i in range(0, len(data.y), batch_size):
        sl = slice(i, i + batch_size)
        out = model(data.img[sl], None if data.txt is None else data.txt[sl])
        if kind == "binary":
            hits.append(((out.squeeze(-1) > 0).float() == data.y[sl]).float())
        else:
            iou, _ = iou_and_giou(cxcywh_to_xyxy(out.sigmoid()), data.y[sl])
            ious.append(iou)
            hits.append((iou >= 0.5).float())
    hits = torch.cat(hits)
    return hits.mean().item(), hits.tolist(), (torch.cat(ious).mean().item() if ious else None)


def train_one(make_model: Callable[[], ProbeModel], data: Dict[str, SplitData], kind, lr, s: Settings):
    torch.manual_seed(s.seed)
    model = make_model()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=s.weight_decay)
    train = data["train"]
    n = len(train.y)
    steps_per_epoch = math.ceil(n / s.batch_size)
    total = steps_per_epoch * s.max_epochs
    warm = max(1, int(s.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: (k + 1) / warm if k < warm
        else 0.5 * (1 + math.cos(math.pi * (k - warm) / max(1, total - warm))))
    gen = torch.Generator().manual_seed(s.seed)
    best, best_epoch, best_state, history = -1.0, 0, None, []
    for epoch in range(1, s.max_epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, s.batch_size):
            idx = perm[i:i + s.batch_size]
            out = model(train.img[idx], None if train.txt is None else train.txt[idx])
            loss = predict_loss(kind, out, train.y[idx], s)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        val = evaluate(model, data["val"], kind)[0]
        history.append(val)
        if val > best:
            best, best_epoch = val, epoch
            best_state = copy.deepcopy({k: v for k, v in model.state_dict().items()})
        elif epoch - best_epoch >= s.patience:
            break
    model.load_state_dict(best_state)
    return model, best, best_epoch, history


def search(make_model, data: Dict[str, SplitData], kind, s: Settings) -> Result:
    """Grid over learning rates; the test score is that of the best validation model."""
    best, history = None, {}
    for lr in s.lrs:
        model, val, epoch, hist = train_one(make_model, data, kind, lr, s)
        history[lr] = hist
        if best is None or val > best[1]:
            best = (model, val, epoch, lr)
    model, val, epoch, lr = best
    test, hits, iou = evaluate(model, data["test"], kind)
    return Result(lr=lr, epoch=epoch, val=val, test=test, test_iou=iou, test_correct=hits, history=history)
