"""The training step waits for the device at most twice: one read of the step's flags before
backward (every rank's loss finite, a stop signal on any rank, the skip counts) and one read of
the logged scalars (with whether the gradient norm was finite: a non-finite one skips the
update on the device).

Host reads are counted by wrapping the Python entry points through which a tensor's value
reaches Python (item, tolist, bool, int, float, index, numpy). On a GPU every one of them is
a device sync; C++-internal syncs (a boolean-mask index) are caught on a GPU by
`torch.cuda.set_sync_debug_mode` in bench/gpu_check.sh. The loader is read before counting
starts: its work happens on the CPU in worker processes, never in the step."""
import itertools
import traceback
from collections import Counter

import pytest
import torch

from conftest import compose

READS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "numpy")


class HostReads:
    """Context manager counting host reads of tensor values, with where each came from."""

    def __init__(self):
        self.n, self.where, self._orig = 0, Counter(), {}

    def __enter__(self):
        for name in READS:
            orig = getattr(torch.Tensor, name)
            self._orig[name] = orig

            def wrapped(t, *a, _orig=orig, _name=name, **k):
                self.n += 1
                frame = traceback.extract_stack(limit=2)[0]  # the caller of the read
                self.where[f"{_name} at {frame.filename.rsplit('/', 2)[-2:]}:{frame.lineno}"] += 1
                return _orig(t, *a, **k)
            setattr(torch.Tensor, name, wrapped)
        return self

    def __exit__(self, *exc):
        for name, orig in self._orig.items():
            setattr(torch.Tensor, name, orig)


def test_counter_sees_the_reads_it_claims_to():
    x = torch.ones(3)
    with HostReads() as r:
        bool(x.sum() > 0), x.sum().item(), x.tolist(), int(x[0]), float(x[1]), [0, 1][x[0].long()]
    assert r.n == 6, r.where


STEPS = 5


def _trainer(data, tmp_path, accum):
    from train.config import validate
    from train.trainer import Trainer
    # one step more than the test feeds: the loop ends when the fed loader runs dry, before
    # the end-of-run save, evaluation and export (which are not steps)
    over = {"data.root": data, "run_dir": tmp_path / "run", "optim.steps": STEPS + 1, "optim.warmup_steps": 2,
            "optim.accum_steps": accum, "data.pairs_per_step": 8, "data.set_items_per_step": 6,
            "data.workers": 0, "data.shuffle_buffer": 16, "eval.every_steps": 0, "eval.benchmarks": "[]",
            "logger.wandb": "false", "logger.log_every": 1000, "checkpoint.every_steps": 0,
            "checkpoint.resume": "false"}
    cfg = validate(compose([f"{k}={v}" for k, v in over.items()]))
    return Trainer(cfg), cfg


@pytest.mark.parametrize("accum", [1, 2])
def test_a_step_reads_the_device_at_most_twice(tiny_data, tmp_path, monkeypatch, accum):
    import train.trainer as T
    trainer, cfg = _trainer(tiny_data, tmp_path, accum)
    real = T.make_loader(T.spec_from_config(cfg.data, cfg.seed, 0, 1), trainer.preprocess_train,
                         trainer.tokenizer, 0)
    batches = list(itertools.islice(iter(real), STEPS * accum))
    assert all("sets" in b for b in batches)
    marks, reads = [], HostReads()

    def feed():
        # the loader's next() marks step boundaries: the reads between two marks belong to
        # one step (forward, backward, flags, optimizer, logging)
        for i, b in enumerate(batches):
            if i % accum == 0:
                marks.append((reads.n, Counter(reads.where)))
            yield b
        marks.append((reads.n, Counter(reads.where)))
    monkeypatch.setattr(T, "make_loader", lambda *a, **k: feed())
    from train import text_trim
    chunked_calls = []
    orig_chunked = text_trim._encode_chunked
    monkeypatch.setattr(text_trim, "_encode_chunked", lambda *a: chunked_calls.append(1) or orig_chunked(*a))
    with reads, pytest.raises(StopIteration):
        trainer.train()
    assert trainer.step == STEPS
    counts = [b[0] - a[0] for a, b in zip(marks, marks[1:])]
    where = marks[-1][1] - marks[1][1]
    # step 1 prints its losses (a logging interval); steps 2.. are plain steps: one read of
    # the flags and one of the logged scalars
    assert counts[1:] == [2] * (STEPS - 1), (counts, dict(where))
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    rows = [r for r in map(__import__("json").loads, lines) if "loss/total" in r]
    assert len(rows) == STEPS and all(r["step_skipped"] == 0 for r in rows)
    assert all(r["hn/acc_i2t"] == r["hn/acc_i2t"] for r in rows)  # diagnostics logged (not NaN)
    # the text tower ran in length-sorted runs (without accumulation), inside the same budget
    assert (len(chunked_calls) > 0) == (accum == 1), len(chunked_calls)


def test_the_loader_checks_the_set_index_the_step_trusts():
    # the step no longer checks the index (about a dozen syncs): the collate does, on the CPU
    from train.data.set_batcher import collate_sets
    tok = lambda caps: torch.zeros(len(caps), 4, dtype=torch.long)
    good = {"images": [torch.zeros(3, 2, 2)] * 2, "captions": ["a", "b"], "image_caption": [0, 1],
            "img_keys": [1, 2], "cap_keys": [3, 4], "subset": "s"}
    out = collate_sets([good], tok)
    assert out["n_sets"] == 1 and out["text_len"] == 1
    lonely = dict(good, images=good["images"][:1], captions=["a"], image_caption=[0], img_keys=[1],
                  cap_keys=[3])
    with pytest.raises(ValueError, match="has 1 caption"):
        collate_sets([good, lonely], tok)


def test_trusted_inputs_skip_the_checks_and_nan_still_shows_in_the_loss():
    from train.losses import NonFiniteFeatures, clip_loss, trusted_inputs
    f = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    bad = f.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(NonFiniteFeatures):
        clip_loss(f, bad, f, bad, torch.tensor(10.0))
    with trusted_inputs(), HostReads() as r:
        loss = clip_loss(f, bad, f, bad, torch.tensor(10.0))
    assert r.n == 0 and not torch.isfinite(loss)
    with pytest.raises(NonFiniteFeatures):  # the context ends with its block
        clip_loss(f, bad, f, bad, torch.tensor(10.0))
