"""MMVP-VLM (Tong et al., "Eyes Wide Shut? Exploring the Visual Shortcomings of Multimodal
LLMs", 2024): ROOT/Questions.csv as released (columns: question id, type, statement; rows in
consecutive pairs, ids 2k-1 and 2k) and ROOT/MLLM_VLM_Images/<type>/<id>.jpg. Each statement,
prefixed "a photo of " as the benchmark's evaluation does, must pick its own image of the pair
over the other one; a pair counts when both statements do (paired.py's image score). Accuracy
per visual pattern (the type column, nine patterns of 15 pairs) and `avg/acc`, their mean.
The official script decides a statement by softmax > 0.5 over the two images, so its ties go
to the second image; ours follow the tie rule."""
import csv
from pathlib import Path

from .base import Evaluator
from .paired import Pair, score_pairs
from .scoring import macro

PREFIX = "a photo of "


def load_mmvp(root, path_of=None):
    root = Path(root)
    path_of = path_of or (lambda r, rel, where: str(Path(r) / rel))
    questions = root / "Questions.csv"
    if not questions.is_file():
        raise FileNotFoundError(f"MMVP-VLM: {questions} does not exist")
    with open(questions, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    if len(rows) % 2:
        raise ValueError(f"MMVP-VLM: {questions} has {len(rows)} rows; statements come in pairs")
    pairs = []
    for n in range(0, len(rows), 2):
        (q1, t1, s1), (q2, t2, s2) = rows[n][:3], rows[n + 1][:3]
        where = f"{questions} rows {n + 2}-{n + 3}"
        if t1 != t2 or not (q1.strip().isdigit() and q2.strip().isdigit()):
            raise ValueError(f"{where}: a pair needs two numeric ids of one type, got {(q1, t1)} and "
                             f"{(q2, t2)}")
        imgs = [path_of(root / "MLLM_VLM_Images", f"{t1}/{int(q)}.jpg", where) for q in (q1, q2)]
        pairs.append(Pair(imgs, [PREFIX + s1, PREFIX + s2], t1))
    return pairs


class MmvpEvaluator(Evaluator):
    type_name = "mmvp_vlm"

    def __init__(self, root, **common):
        super().__init__(**common)
        self.items = load_mmvp(root, self.path)[:self.limit]

    def inputs(self):
        return [p for it in self.items for p in it.images], [c for it in self.items for c in it.captions]

    def score(self, model, tokenizer, preprocess, device="cpu"):
        scores, examples = score_pairs(self.items, model, tokenizer, preprocess, device, self.batch_size,
                                       self.tie_rule, self.n_examples, "mmvp_vlm")
        metrics = {f"{g}/acc": scores[f"{g}/image"] for g in dict.fromkeys(it.group for it in self.items)}
        metrics["avg/acc"] = macro(metrics.values())
        return self.result(metrics, {"pairs": len(self.items)}, examples)
