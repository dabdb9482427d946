"""The evaluator contract (big_vision's, made explicit):

  * an evaluator is a class whose constructor's keyword parameters ARE its config keys
    (train/eval/registry.py reads them off the signature: no hand-written table);
  * `score(model, tokenizer, preprocess, device) -> Result`; it never touches the model's
    train/eval mode or autograd: `run_suite` does both, in this one place, for every evaluator;
  * a Result keeps what the benchmark measures (metrics, in percent), how many items went in
    or were dropped (counts), and the example candidate sets for the tables (examples) apart,
    so nothing downstream has to guess which numbers are scores.

The model is any object with encode_image(pixels, normalize=True) and encode_text(tokens,
normalize=True): open_clip models, and the adapters in train/eval/adapters/ for the rest. A
cross-encoder also has match(images, texts) -> one score per pair, which scoring.scores_of then
uses instead of dot products."""
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, List

import torch

COUNTS = "counts"  # flat keys of counts read <suite>/counts/<name>


@dataclass
class Result:
    metrics: Dict[str, float]
    counts: Dict[str, int] = field(default_factory=dict)
    examples: List[dict] = field(default_factory=list)
    tie_rule: str = "strict"

    def flat(self) -> Dict[str, float]:
        """One {key: number} dict for metrics files and wandb: metrics as they are, counts under counts/."""
        out = dict(self.metrics)
        out.update({f"{COUNTS}/{k}": float(v) for k, v in self.counts.items()})
        return out


def is_count(key: str) -> bool:
    return COUNTS in key.split("/")


@contextmanager
def evaluation_mode(model):
    """eval() and no_grad for the duration; the model's own mode back afterwards, even on error."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        if hasattr(model, "train"):
            model.train(was_training)


def run_suite(evaluator, model, tokenizer, preprocess, device="cpu") -> Result:
    with evaluation_mode(model):
        result = evaluator.score(model, tokenizer, preprocess, device)
    if not isinstance(result, Result):
        raise TypeError(f"{type(evaluator).__name__}.score must return a Result, got {type(result).__name__}")
    return result
