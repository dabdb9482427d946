"""The figure each zero-shot dataset is reported by, as ELEVATER's toolkit computes it (Li et al.,
"ELEVATER: A Benchmark and Toolkit for Evaluating Language-Augmented Visual Models", 2022;
its vision_benchmark/evaluation/metric.py and resources/datasets/*.yaml, and the
vision-evaluation 0.2.9 package it calls):

  accuracy        top-1 (ELEVATER's default)
  mean_per_class  the mean over classes of each class's top-1 (Caltech-101, FGVC Aircraft,
                  Oxford Flowers-102, Oxford-IIIT Pets)
  11point_map     VOC 2007: per class, one-vs-rest over every image, 11-point interpolated average
                  precision (the PASCAL VOC 2007 devkit's: the mean over recall t = 0, 0.1, ..., 1
                  of the best precision at recall >= t), then the mean over classes
  roc_auc         Hateful Memes: the area under the ROC curve of class 1's score

ELEVATER scores with probabilities, softmax(100 * cosine) over the classes of each image, not
raw cosines: for 11point_map a class's ranking of the images depends on that normalisation,
so `probabilities` gives the same numbers here. Figures are in percent."""
import numpy as np

METRICS = ("accuracy", "mean_per_class", "11point_map", "roc_auc")

# ELEVATER's TEST.METRIC where it is not accuracy, keyed by our shipped dataset names
ELEVATER_METRICS = {"caltech101": "mean_per_class", "fgvc_aircraft": "mean_per_class",
                    "flowers": "mean_per_class", "pets": "mean_per_class",
                    "voc2007": "11point_map", "hateful_memes": "roc_auc"}

ELEVATER_LOGIT_SCALE = 100.0  # clip_zeroshot_evaluator's fixed scale, whatever the model's own


def metric_name(spec, dataset=None, where="zero-shot"):
    """The metric a dataset is reported by: `spec` when given (ELEVATER's spellings such as
    `mean-per-class` or `11point_mAP` accepted), else ELEVATER's for a shipped `dataset`."""
    if spec is None:
        return ELEVATER_METRICS.get(dataset, "accuracy")
    key = str(spec).strip().lower().replace("-", "_")
    if key not in METRICS:
        raise ValueError(f"{where}: metric {spec!r} is not one of {', '.join(METRICS)}")
    return key


def probabilities(scores):
    """(N, C) cosines -> (N, C) softmax(100 * cosine) per image, in float32 as ELEVATER's."""
    return (ELEVATER_LOGIT_SCALE * scores.float()).softmax(dim=-1)


def _curve(scores, positive):
    """(precision, recall) at every distinct score, highest first, images that tie counted
    together (one threshold, as sklearn's precision_recall_curve), then the curve's end point
    (recall 0, precision 1) that sklearn appends and ELEVATER's interpolation includes."""
    order = np.argsort(-scores, kind="stable")
    s, pos = scores[order], positive[order].astype(np.float64)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the last image of each run of equal scores
    tp = np.cumsum(pos)[last]
    fp = (last + 1) - tp
    return np.r_[tp / (tp + fp), 1.0], np.r_[tp / pos.sum(), 0.0]


def eleven_point_ap(scores, positive):
    """One class: scores (N,), positive (N,) bool with at least one True -> AP in [0, 1]."""
    precision, recall = _curve(np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool))
    # np.linspace gives the same eleven floats as ELEVATER's, so a recall of exactly 0.7 compares alike
    return float(np.mean([precision[recall >= t].max() for t in np.linspace(1, 0, 11)]))


def mean_11point_ap(probs, targets):
    """probs (N, C); targets (N, C): 1 positive, 0 negative, -1 left out of that class (VOC's
    "difficult") -> percent, the mean over the classes that have at least one positive image (a
    class with none has no recall)."""
    probs, targets = np.asarray(probs, dtype=np.float64), np.asarray(targets)
    aps = []
    for c in range(probs.shape[1]):
        kept = targets[:, c] >= 0
        if (targets[:, c] == 1).any():
            aps.append(eleven_point_ap(probs[kept, c], targets[kept, c] == 1))
    return 100.0 * float(np.mean(aps)) if aps else float("nan")


def target_matrix(labels, n_classes):
    """(N, C) targets for mean_11point_ap: one-hot for class indices; for multi-label labels
    (voc_format.MultiLabel) 1 on the classes shown, -1 on the difficult-only ones."""
    out = np.zeros((len(labels), n_classes), dtype=np.int64)
    for n, label in enumerate(labels):
        if isinstance(label, int):
            out[n, label] = 1
        else:
            out[n, sorted(label.difficult)] = -1
            out[n, sorted(label.positive)] = 1
    return out


def roc_auc(scores, positive):
    """Binary ROC AUC in percent: the chance that a positive outscores a negative, a tie counting
    half (the trapezoidal area under the curve, as sklearn's roc_auc_score), from average ranks."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        raise ValueError("roc_auc needs images of both classes")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    s = scores[order]
    starts = np.r_[0, np.nonzero(np.diff(s))[0] + 1]
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts, ends):  # tied scores share the mean of their 1-based ranks
        ranks[order[a:b]] = (a + b + 1) / 2
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return 100.0 * u / (n_pos * n_neg)

