"""Evaluators. Contract: built from config; run(model, tokenizer, preprocess) -> {name: value}.
The trainer knows nothing about individual benchmarks."""
from .spec import SpecEvaluator


def build_evaluators(eval_cfg, data_root):
    out = {}
    for name in eval_cfg.benchmarks:
        if name == "spec":
            out[name] = SpecEvaluator(eval_cfg.spec_root or f"{data_root}/spec_heldout",
                                      batch_size=eval_cfg.batch_size)
        else:
            raise ValueError(f"unknown benchmark '{name}' in eval.benchmarks")
    return out
