"""What the benchmarks of image pairs share (Winoground, EqBen, COLA multi-object): items are
paired.Pair (two images, their two captions), the model sees every image and caption, and the
scores are paired.score_pairs' text / image / group. A subclass loads `self.items` in its own
constructor, whose parameters are its config keys (contract.py)."""
from .base import Evaluator
from .encode import load_image
from .paired import score_pairs


class PairedEvaluator(Evaluator):
    benchmark = None                      # the name score_pairs gives the examples
    counted_as = "items"                  # the count's name in the Result
    load_image = staticmethod(load_image)  # key -> PIL image (EqBen's .npy frames differ)
    items = ()

    def inputs(self):
        return [p for it in self.items for p in it.images], [c for it in self.items for c in it.captions]

    def figures(self, scores):
        """The benchmark's metrics from score_pairs' {"text", "image", "group", ...}."""
        return scores

    def score(self, model, tokenizer, preprocess, device="cpu"):
        scores, examples = score_pairs(self.items, model, tokenizer, preprocess, device, self.batch_size,
                                       self.tie_rule, self.n_examples, self.benchmark, load=self.load_image)
        return self.result(self.figures(scores), {self.counted_as: len(self.items)}, examples)
