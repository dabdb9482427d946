"""The comparisons every benchmark shares, under one of two tie rules:

  strict  a tie with a wrong candidate counts as wrong, so a collapsed model (every score
          equal) scores 0, never chance. SugarCrepe's, VALSE's, ARO's and Winoground's own
          scoring code compare s(pos) > s(neg) strictly.
  first   argmax over the candidates in the order the benchmark file lists them: among equal
          scores the first candidate wins (SPEC's official eval.py, np.argmax).

Ties are exact only because identical token sequences get identical embeddings (encode.py)."""
import torch

TIE_RULES = ("strict", "first")


def check_rule(rule):
    if rule not in TIE_RULES:
        raise ValueError(f"tie_rule must be one of {TIE_RULES}, got {rule!r}")
    return rule


def top1(scores: torch.Tensor, label: int, rule="strict") -> bool:
    """scores: (K,), in the file's candidate order. Is the label the chosen candidate?"""
    if rule == "first":
        return int(torch.argmax(scores)) == label  # torch.argmax returns the first maximum
    others = torch.cat([scores[:label], scores[label + 1:]])
    return bool(scores[label] > others.max()) if others.numel() else True


def best_of(scores: torch.Tensor, right, rule="strict") -> bool:
    """Is the chosen candidate one of several right ones (the objects an image shows)?"""
    if rule == "first":
        return int(torch.argmax(scores)) in set(right)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask[list(right)] = True
    if (~mask).sum() == 0:
        return True
    return bool(scores[mask].max() > scores[~mask].max())


def rank(scores: torch.Tensor, right, rule="strict") -> int:
    """0-based rank of the best right candidate; Recall@K is rank < K. Wrong candidates that
    score above it count; one that ties counts under `strict` always, under `first` only if it
    comes earlier in the candidate order than the first best right one."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask[list(right)] = True
    best = scores[mask].max()
    above = int((scores[~mask] > best).sum())
    tied = (scores == best) & ~mask
    if rule == "first":
        first_right = int(torch.nonzero((scores == best) & mask)[0])
        return above + int(tied[:first_right].sum())
    return above + int(tied.sum())


def pct(hits) -> float:
    hits = list(hits)
    return 100.0 * sum(hits) / len(hits) if hits else float("nan")


def macro(values) -> float:
    values = [v for v in values if v == v]  # drop NaN (an empty group)
    return sum(values) / len(values) if values else float("nan")


def first_per_group(items, limit, group=lambda it: it.group):
    """The first `limit` items of every group (sub-task, piece), in file order: a cheap check
    that still reports every group, where the first N overall would be the first group alone."""
    if limit is None:
        return list(items)
    seen, out = {}, []
    for it in items:
        g = group(it)
        if seen.get(g, 0) < limit:
            seen[g] = seen.get(g, 0) + 1
            out.append(it)
    return out


def strict_top1(scores: torch.Tensor, label: int) -> bool:
    """top1 under the strict rule (the name other modules import)."""
    return top1(scores, label, "strict")


def scores_of(candidates, query: torch.Tensor, model=None, image_query=True) -> torch.Tensor:
    """s(query, c) for each candidate feature, one dot product each. Not a stacked matmul: a
    BLAS kernel may round two identical rows differently (their positions in the block differ),
    and equal inputs must give equal scores for the tie rules to mean anything.
    A cross-encoder (a model with `match(images, texts) -> scores`, e.g. BLIP's ITM head) scores
    each (image, text) pair itself; `image_query` says which side the query is."""
    if model is not None and hasattr(model, "match"):
        images = [query] * len(candidates) if image_query else list(candidates)
        texts = list(candidates) if image_query else [query] * len(candidates)
        return model.match(torch.stack(images), torch.stack(texts)).float()
    return torch.stack([torch.dot(c, query) for c in candidates])


def dual_only(model, benchmark):
    """Benchmarks that rank whole galleries need embeddings, not a pair scorer."""
    if hasattr(model, "match"):
        raise ValueError(f"{benchmark}: a cross-encoder (match head) scores pairs only; use its contrastive "
                         "head (e.g. hf: instead of hf-itm:) for retrieval and zero-shot")
