"""The evaluator contract: a type's config keys are its constructor's parameters (a new type
needs no table entry), Result keeps metrics, counts and examples apart, and run_suite alone
switches the model to eval mode and back, even when the evaluator fails."""
import pytest
import torch

from train.eval import build_one, check_options, keys_of, register
from train.eval.base import Evaluator
from train.eval.contract import Result, run_suite


class SeesMode(Evaluator):
    type_name = "sees_mode"

    def __init__(self, answer, fail=False, **common):
        super().__init__(**common)
        self.answer, self.fail = answer, fail

    def score(self, model, tokenizer, preprocess, device="cpu"):
        if self.fail:
            raise RuntimeError("benchmark file vanished")
        return self.result({"acc": float(self.answer), "was_training": float(model.training),
                            "grad": float(torch.is_grad_enabled())}, {"items": 3}, [{"x": 1}])


def test_a_registered_type_is_built_from_its_signature():
    register(SeesMode)
    assert keys_of("sees_mode") == {"answer": True, "fail": False, "limit": False, "tie_rule": False,
                                    "allow_outside_root": False}
    with pytest.raises(ValueError, match=r"needs key\(s\) \['answer'\]"):
        check_options("x", {"type": "sees_mode"})
    with pytest.raises(ValueError, match="unknown key"):
        build_one("x", {"type": "sees_mode", "answer": 1, "anwser": 2})
    ev = build_one("x", {"type": "sees_mode", "answer": 7, "tie_rule": "first", "every_steps": 10}, tick=5)
    assert ev.answer == 7 and ev.tie_rule == "first" and ev.every_steps == 10


def test_run_suite_sets_and_restores_the_mode_and_keeps_parts_apart():
    register(SeesMode)
    model = torch.nn.Linear(2, 2).train()
    res = run_suite(build_one("x", {"type": "sees_mode", "answer": 50}), model, None, None)
    assert isinstance(res, Result) and res.metrics["was_training"] == 0.0 and res.metrics["grad"] == 0.0
    assert model.training  # back as it was
    assert res.flat() == {"acc": 50.0, "was_training": 0.0, "grad": 0.0, "counts/items": 3.0}
    assert res.examples == [{"x": 1}]
    model.eval()
    with pytest.raises(RuntimeError, match="vanished"):
        run_suite(build_one("x", {"type": "sees_mode", "answer": 1, "fail": True}), model.train(), None, None)
    assert model.training
