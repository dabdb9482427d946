"""Feature-cached accumulation: K micro-batches give the gradient of one big batch (the whole
accumulated batch serves as negatives), unlike naively summed micro-batch losses."""
import pytest
import torch
from omegaconf import OmegaConf

from train.accumulate import accumulated_passes, merge_micro_batches
from train.config import LossConfig
from train.data.set_batcher import collate_sets
from train.models import create
from train.step import forward_losses

# a model much smaller than hnclip-tiny: gradients are compared, not learned
MICRO = {"embed_dim": 32,
         "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
         "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module", autouse=True)
def micro_model(tmp_path_factory):
    import json

    import open_clip
    path = tmp_path_factory.mktemp("cfg") / "hnclip-micro.json"
    path.write_text(json.dumps(MICRO))
    open_clip.add_model_config(path)


def micro_batch(gen, tokenizer, n_pairs=4, set_sizes=(2, 3)):
    img = lambda: torch.randn(3, 32, 32, generator=gen)
    words = ["dog", "cat", "kite", "ball", "car", "tree", "cup", "hat"]
    word = lambda: " ".join(words[int(i)] for i in torch.randint(len(words), (4,), generator=gen))
    sets = []
    for k in set_sizes:
        caps = [f"{word()} {i}" for i in range(k + 1)]  # one extra caption: a text-only negative
        sets.append({"images": [img() for _ in range(k)], "captions": caps,
                     "image_caption": list(range(k)),
                     "img_keys": torch.randint(1 << 40, (k,), generator=gen).tolist(),
                     "cap_keys": torch.randint(1 << 40, (k + 1,), generator=gen).tolist(), "subset": "count"})
    return {"pairs": {"images": torch.stack([img() for _ in range(n_pairs)]),
                      "tokens": tokenizer([word() for _ in range(n_pairs)])},
            "sets": collate_sets(sets, tokenizer)}


def grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("pool", ["step+pairs"])
def test_two_micro_batches_equal_one_big_batch(pool):
    torch.manual_seed(0)
    model, _, _, tokenizer = create("hnclip-micro")
    gen = torch.Generator().manual_seed(1)
    batches = [micro_batch(gen, tokenizer), micro_batch(gen, tokenizer, set_sizes=(3, 2, 2))]
    cfg = OmegaConf.structured(LossConfig(hn_negatives=pool))

    merged, _, _ = merge_micro_batches(batches)
    model.zero_grad()
    big_loss, _ = forward_losses(model, merged, cfg)
    big_loss.backward()
    big = grads(model)

    model.zero_grad()
    losses = []
    for _, loss, _ in accumulated_passes(model, batches, cfg, "cpu"):
        loss.backward()
        losses.append(loss.item())
    acc = grads(model)
    # each pass: the big-batch loss
    assert all(abs(pass_loss - big_loss.item()) < 1e-5 for pass_loss in losses)
    assert acc.keys() == big.keys()
    for n in big:
        assert torch.allclose(acc[n], big[n], rtol=1e-4, atol=1e-6), (n, (acc[n] - big[n]).abs().max())
    assert torch.allclose(acc["logit_scale"], big["logit_scale"], rtol=1e-4)

    # the naive alternative (each micro-batch its own negatives) is measurably different
    model.zero_grad()
    for b in batches:
        (forward_losses(model, b, cfg)[0] / len(batches)).backward()
    naive = grads(model)
    diff = max((naive[n] - big[n]).abs().max().item() / (big[n].abs().max().item() + 1e-12) for n in big)
    assert diff > 1e-2


def test_merge_renumbers_sets():
    _, _, _, tokenizer = create("hnclip-micro")
    gen = torch.Generator().manual_seed(2)
    a, b = micro_batch(gen, tokenizer), micro_batch(gen, tokenizer, set_sizes=(2,))
    merged, img_rows, txt_rows = merge_micro_batches([a, b])
    s = merged["sets"]
    assert s["cap_set"].tolist() == a["sets"]["cap_set"].tolist() + [2, 2, 2]
    assert s["img_cap"].tolist() == a["sets"]["img_cap"].tolist() + [7, 8]
    assert s["cap_img"].tolist() == a["sets"]["cap_img"].tolist() + [5, 6, -1]
    # rows: pairs of a, then pairs of b, then set items of a, then of b
    assert img_rows[0].tolist() == [0, 1, 2, 3, 8, 9, 10, 11, 12]
    assert img_rows[1].tolist() == [4, 5, 6, 7, 13, 14]


def test_switches_lock_checkpointing_bf16_under_accumulation():
    """Locked image tower gets no gradient; gradient checkpointing changes no gradient; bf16
    autocast runs the same passes with finite gradients close to fp32's."""
    from train.config import ModelConfig
    from train.models import lock_towers
    cfg = OmegaConf.structured(LossConfig())

    def run(model_cfg, bf16=False):
        torch.manual_seed(0)
        model, _, _, tokenizer = create("hnclip-micro")
        lock_towers(model, OmegaConf.structured(model_cfg))
        g = torch.Generator().manual_seed(3)
        batches = [micro_batch(g, tokenizer), micro_batch(g, tokenizer)]
        autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
        for _, loss, _ in accumulated_passes(model, batches, cfg, "cpu", autocast=autocast):
            loss.backward()
        return model, grads(model)

    _, plain = run(ModelConfig())
    model, ckpt = run(ModelConfig(grad_checkpointing=True, lock_image=True))
    assert not any(n.startswith("visual.") for n in ckpt), "a locked tower must get no gradient"
    assert all(not p.requires_grad for p in model.visual.parameters())
    for n, g in ckpt.items():
        assert torch.allclose(g, plain[n], rtol=1e-4, atol=1e-6), n
    _, bf = run(ModelConfig(), bf16=True)
    assert all(torch.isfinite(g).all() for g in bf.values())
    cos = torch.nn.functional.cosine_similarity(torch.cat([g.flatten() for g in bf.values()]),
                                                torch.cat([plain[n].flatten() for n in bf]), dim=0)
    assert cos > 0.9, float(cos)
