"""The loop in torchtitan's shape, one process: train_step returns a StepResult, the cadence
decides saving, evaluation and printing, and a non-finite gradient norm (with a finite loss)
leaves the weights and the optimizer state as they were, on the device, without a host read."""
import itertools
import json

import pytest
import torch

from conftest import compose


def _trainer(data, tmp_path, **extra):
    from train.config import validate
    from train.trainer import Trainer
    over = {"data.root": data, "run_dir": tmp_path / "run", "optim.steps": 4, "optim.warmup_steps": 1,
            "data.pairs_per_step": 8, "data.set_items_per_step": 6, "data.workers": 0,
            "data.shuffle_buffer": 16, "eval.every_steps": 0, "eval.benchmarks": "[]",
            "logger.wandb": "false", "logger.log_every": 1000, "checkpoint.every_steps": 0,
            "checkpoint.resume": "false"}
    over.update(extra)
    return Trainer(validate(compose([f"{k}={v}" for k, v in over.items()])))


def test_the_cadence_decides_saving_evaluation_and_printing():
    from train.trainer import Cadence
    c = Cadence(steps=10, save_every=4, eval_every=3, print_every=5)
    assert [s for s in range(1, 11) if c.should_save(s, healthy=True)] == [4, 8]
    assert not c.should_save(8, healthy=False)  # inside a non-finite streak
    assert [s for s in range(1, 11) if c.should_eval(s)] == [3, 6, 9]  # the last step: after the loop
    assert [s for s in range(1, 11) if c.should_print(s, taken=True)] == [1, 5, 10]
    assert not c.should_print(5, taken=False)
    assert not any(Cadence(10, 0, 0, 1).should_save(s, True) or Cadence(10, 0, 0, 1).should_eval(s)
                   for s in range(1, 11))


@pytest.mark.parametrize("accum", [1, 2])
def test_a_nonfinite_gradient_norm_leaves_weights_and_optimizer_state_alone(tiny_data, tmp_path,
                                                                           monkeypatch, accum):
    trainer = _trainer(tiny_data, tmp_path, **{"optim.accum_steps": accum})
    import train.trainer as T
    loader = T.make_loader(T.spec_from_config(trainer.cfg.data, trainer.cfg.seed, 0, 1),
                           trainer.preprocess_train, trainer.tokenizer, 0)
    it = iter(list(itertools.islice(iter(loader), 3 * accum)))
    results = [trainer.train_step(it)]
    trainer.step += 1
    before = {n: p.detach().clone() for n, p in trainer.raw_model.named_parameters()}
    adam_steps = [float(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()]
    real_norm = trainer._grad_norm
    monkeypatch.setattr(trainer, "_grad_norm", lambda: real_norm() * float("inf"))
    results.append(trainer.train_step(it))
    trainer.step += 1
    assert not results[1].taken and results[1].grad_nonfinite and not results[1].flags.loss_nonfinite
    assert results[1].why() == "non-finite gradient norm"
    assert results[1].logs["loss/total"] != results[1].logs["loss/total"]
    for n, p in trainer.raw_model.named_parameters():
        assert torch.equal(p, before[n]), f"{n} changed on a skipped step"
    assert [float(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()] == adam_steps
    monkeypatch.setattr(trainer, "_grad_norm", real_norm)
    results.append(trainer.train_step(it))
    assert results[0].taken and results[2].taken and results[2].logs["grad_norm"] > 0
    assert any(not torch.equal(p, before[n]) for n, p in trainer.raw_model.named_parameters())


def test_a_raising_loss_is_a_skipped_step_counted_in_the_metrics(tiny_data, tmp_path, monkeypatch):
    import train.trainer as T
    trainer = _trainer(tiny_data, tmp_path)
    real, calls = T.forward_losses, []

    def raising_at_step_2(*a, **k):
        calls.append(1)
        out = real(*a, **k)
        if len(calls) == 2:
            raise FloatingPointError("non-finite loss")
        return out
    monkeypatch.setattr(T, "forward_losses", raising_at_step_2)
    trainer.train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss/total" in r]
    assert [r["step_skipped"] for r in rows] == [0, 1, 0, 0] and rows[-1]["nonfinite_steps"] == 1
