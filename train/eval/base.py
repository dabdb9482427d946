"""What every evaluator shares: the options every suite takes, and how it builds its Result.
Subclasses declare their own config keys as constructor parameters (see contract.py)."""
from .contract import Result
from .paths import inside
from .scoring import check_rule

RUNTIME = ("batch_size", "examples", "data_root")  # from the eval config, not the suite's options


class Evaluator:
    type_name = None  # the `type` a suite names in its config

    def __init__(self, *, limit=None, tie_rule="strict", allow_outside_root=False, batch_size=128,
                 examples=0):
        """limit: first N items (per sub-task where the benchmark has them) for a cheap check;
        tie_rule: strict | first (scoring.py); allow_outside_root: accept image paths in the
        benchmark file that are absolute or climb out of the image root (paths.py)."""
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError(f"{self.type_name}: limit must be a positive integer or null, got {limit!r}")
        self.limit, self.tie_rule = limit, check_rule(tie_rule)
        self.allow_outside_root = bool(allow_outside_root)
        self.batch_size, self.n_examples = batch_size, examples

    def path(self, root, rel, where):
        return inside(root, rel, where, self.allow_outside_root)

    def result(self, metrics, counts=None, examples=None):
        return Result(dict(metrics), dict(counts or {}), list(examples or []), self.tie_rule)

    def inputs(self):
        """(image keys, texts) the benchmark shows the model: what the contamination check compares
        with training data. A key is a path, (path, box), or an in-memory PIL image."""
        raise NotImplementedError(f"{type(self).__name__} does not list its inputs")

    def score(self, model, tokenizer, preprocess, device="cpu"):
        raise NotImplementedError
