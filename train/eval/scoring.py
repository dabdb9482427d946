"""The comparisons every benchmark shares. All are strict: a tie with a wrong candidate counts as
wrong, so a collapsed model (every score equal) scores 0, never chance."""
import torch


def strict_top1(scores: torch.Tensor, label: int) -> bool:
    """scores: (K,). True iff scores[label] is strictly above every other score."""
    others = torch.cat([scores[:label], scores[label + 1:]])
    return bool(scores[label] > others.max()) if others.numel() else True


def strict_best_of(scores: torch.Tensor, right) -> bool:
    """True iff the best right candidate beats every wrong one strictly (several may be right:
    the objects present in an image, the captions an image has)."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask[list(right)] = True
    if (~mask).sum() == 0:
        return True
    return bool(scores[mask].max() > scores[~mask].max())


def strict_rank(scores: torch.Tensor, right) -> int:
    """0-based rank of the best right candidate, counting every wrong candidate that scores at
    least as high (ties rank the right one last). Recall@K is rank < K."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask[list(right)] = True
    best = scores[mask].max()
    return int((scores[~mask] >= best).sum())


def pct(hits) -> float:
    hits = list(hits)
    return 100.0 * sum(hits) / len(hits) if hits else float("nan")


def macro(values) -> float:
    values = [v for v in values if v == v]  # drop NaN (an empty group)
    return sum(values) / len(values) if values else float("nan")
