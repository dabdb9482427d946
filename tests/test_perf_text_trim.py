"""The text tower cut to the step's longest caption (train/text_trim.py) gives the same
features and gradients as the full context, and leaves models it does not hold for alone."""
import copy

import torch

from assert_lib import assert_same_gradients
from train import models, text_trim


def _tiny():
    torch.manual_seed(0)
    model, _, _, tok = models.create("hnclip-tiny")
    return model.double(), tok


def test_trimmed_text_has_the_same_features_and_gradients():
    model, tok = _tiny()
    trimmed = copy.deepcopy(model)
    assert text_trim.enable(trimmed)
    tokens = tok(["a photo of a box", "the pizza is bigger than the sandwich in the picture"])
    cut = text_trim.trim_batches([{"pairs": {"tokens": tokens}}])[0]["pairs"]["tokens"]
    assert cut.shape[1] < tokens.shape[1]
    full_f, cut_f = model.encode_text(tokens), trimmed.encode_text(cut)
    torch.testing.assert_close(cut_f, full_f, rtol=1e-12, atol=1e-12)
    (full_f ** 2).sum().backward()
    (cut_f ** 2).sum().backward()
    assert_same_gradients(model, trimmed)
    # full-length input still works after enable (evaluation passes untrimmed tokens)
    torch.testing.assert_close(trimmed.encode_text(tokens), full_f, rtol=1e-12, atol=1e-12)


def test_trim_batches_cuts_pairs_and_sets_of_a_step_to_one_length():
    _, tok = _tiny()
    short, long = tok(["a box"] * 2), tok(["there are three snowboards and two kites in the image"] * 3)
    step = [{"pairs": {"tokens": short, "images": 1}, "sets": {"tokens": long, "images": 2}},
            {"pairs": {"tokens": short, "images": 3}}]
    out = text_trim.trim_batches(step)
    n = int(long.argmax(-1).max()) + 1
    assert [b["pairs"]["tokens"].shape[1] for b in out] == [n, n]
    assert out[0]["sets"]["tokens"].shape[1] == n and out[1]["pairs"]["images"] == 3
    assert step[0]["pairs"]["tokens"].shape[1] == short.shape[1]  # the input is not modified


def test_models_without_eot_pooling_are_not_trimmed():
    model, _ = _tiny()
    model.text_pool_type = "last"  # the last position's features depend on the length
    assert not text_trim.enable(model)
    assert "encode_text" not in vars(model)


def test_length_sorted_runs_give_the_same_features_and_gradients():
    model, tok = _tiny()
    runs = copy.deepcopy(model)
    assert text_trim.enable(runs)
    caps = ["a box", "a cat on a mat", "the pizza is bigger than the sandwich in the picture", "two dogs",
            "a photo of a small red car parked next to a large blue truck on a street", "a kite"] * 2
    tokens = tok(caps)
    lens = text_trim.caption_lengths(tokens)
    plan = text_trim.plan_chunks(lens, min_saving=0.0)
    assert plan is not None and len(plan.sizes) > 1 and sum(plan.sizes) == len(caps)
    cut = text_trim.trim_batches([{"pairs": {"tokens": tokens, "text_lens": lens}}])[0]["pairs"]["tokens"]
    full_f = model.encode_text(tokens)
    lookups = []
    hook = runs.token_embedding.register_forward_hook(lambda *args: lookups.append(1))
    with text_trim.chunked(plan):
        run_f = runs.encode_text(cut)
    hook.remove()
    torch.testing.assert_close(run_f, full_f, rtol=1e-12, atol=1e-12)
    # one lookup of the token table for all runs: one vocabulary-sized gradient, not one a run
    assert len(lookups) == 1
    (full_f ** 2 * torch.arange(1.0, 1 + len(caps), dtype=full_f.dtype)[:, None]).sum().backward()
    (run_f ** 2 * torch.arange(1.0, 1 + len(caps), dtype=run_f.dtype)[:, None]).sum().backward()
    assert_same_gradients(model, runs)
    # a batch of another size than the plan's is encoded as before
    with text_trim.chunked(plan):
        torch.testing.assert_close(runs.encode_text(tokens[:3]), full_f[:3], rtol=1e-12, atol=1e-12)


def test_plan_is_the_cheapest_cut_and_covers_every_caption():
    import itertools
    import random
    rng = random.Random(0)
    for _ in range(30):
        lens = [rng.randint(3, 32) for _ in range(rng.randint(2, 12))]
        plan = text_trim.plan_chunks(lens, min_saving=0.0)
        s = sorted(lens)
        brute = min(sum((b - a) * s[b - 1] for a, b in zip((0,) + c, c + (len(s),)))
                    for k in range(3) for c in itertools.combinations(range(1, len(s)), k))
        if plan is None:
            assert brute == len(s) * s[-1]
            continue
        assert sum(n * length for n, length in zip(plan.sizes, plan.lengths)) == brute
        run_of = [i for i, n in enumerate(plan.sizes) for _ in range(n)]
        assert all(lens[row] <= plan.lengths[run_of[pos]] for pos, row in enumerate(plan.order.tolist()))
    assert text_trim.plan_chunks([12] * 8) is None          # nothing to save: the plain cut
    assert text_trim.plan_for({"pairs": {"tokens": None}}) is None   # no lengths from the loader
