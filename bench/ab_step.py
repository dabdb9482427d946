"""A/B of the step optimisations, interleaved and best-of-N so a busy machine distorts all
sides alike: AdamW per-tensor loop vs fused, and the text tower on full-length tokens vs cut
to the longest caption vs in length-sorted runs (train/text_trim.py), on LAION-length
captions (bench/laion_captions.py; --captions short: the old ten-token ones).

    .venv/bin/python bench/ab_step.py [--model hnclip-tiny] [--batch 64] [--reps 6] [--captions short]
                                      [--precision bf16]

It also times the text runs under the trainer's CPU attention kernel (train/attention.py: the
math kernel) against torch's own choice, and the ViT's patch embedding alone: open_clip's
convolution against train/patch_embed.py's matrix product, forward + backward. --precision
bf16 runs the forward+backward timings under bf16 autocast."""
import argparse
import copy
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from train import attention, models, patch_embed, text_trim  # noqa: E402
from train.trainer import param_groups  # noqa: E402

CAPTIONS = ["a photo of a box and a kite", "the sheep is small in the image",
            "there is no giraffe in the image", "the pizza is bigger than the sandwich"]


def best_of(fns, reps):
    """fns: {name: callable}; run them in turn reps times, return each one's best seconds."""
    best = {k: float("inf") for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="hnclip-tiny")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--captions", default="laion", choices=("laion", "short"))
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                    help="autocast of the forward+backward and patch-embedding timings")
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    model, _, _, tok = models.create(a.model)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt = {k: torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, **kw)
           for k, kw in (("adamw_loop", {"foreach": False}), ("adamw_fused", {"fused": True}))}
    res = best_of({k: o.step for k, o in opt.items()}, a.reps)

    trimmed = copy.deepcopy(model)
    text_trim.enable(trimmed)
    if a.captions == "laion":
        import numpy as np

        from bench.laion_captions import caption, word_counts
        rng = np.random.default_rng(0)
        captions = [caption(int(n), rng) for n in word_counts(a.batch, rng)]
    else:
        captions = (CAPTIONS * a.batch)[:a.batch]
    tokens = tok(captions)
    cut = text_trim.trim_batches([{"pairs": {"tokens": tokens}}])[0]["pairs"]["tokens"]
    plan = text_trim.plan_chunks(text_trim.caption_lengths(tokens))
    size = model.visual.image_size
    images = torch.randn(a.batch, 3, *(size if isinstance(size, tuple) else (size, size)))

    def fwd_bwd(m, t, runs=None, kernel=nullcontext):
        def run():
            with text_trim.chunked(runs), kernel(), \
                    torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
                i, x, s = m(image=images, text=t)[:3]
            F.cross_entropy(s.float() * i.float() @ x.float().T, torch.arange(a.batch)).backward()
            m.zero_grad(set_to_none=True)
        return run
    # the last: the trainer's CPU attention kernel (train/attention.py) against torch's choice
    math_kernel = lambda: attention.kernel_for(torch.device("cpu"), bf16=True)  # noqa: E731
    res.update(best_of({"fwd_bwd_text_full": fwd_bwd(model, tokens),
                        "fwd_bwd_text_cut": fwd_bwd(trimmed, cut),
                        "fwd_bwd_text_runs": fwd_bwd(trimmed, cut, plan),
                        "fwd_bwd_runs_math_attn": fwd_bwd(trimmed, cut, plan, math_kernel)}, a.reps))
    # the patch embedding: open_clip's convolution against train/patch_embed.py's matrix
    # product, forward + backward of that layer alone, under the --precision autocast
    conv = model.visual.conv1
    as_product = copy.deepcopy(conv)
    holder = torch.nn.Module()
    holder.visual = torch.nn.Module()
    holder.visual.conv1 = as_product
    patch_embed.enable(holder)

    def patches(layer):
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
                out = layer(images)
            out.float().sum().backward()
            layer.weight.grad = None
        return run
    res.update(best_of({"patch_embed_conv": patches(conv), "patch_embed_matmul": patches(as_product)},
                       a.reps))
    runs = "one run"
    if plan is not None:
        runs = " + ".join(f"{n}x{length}" for n, length in zip(plan.sizes, plan.lengths))
    print(f"{a.model}, batch {a.batch}, {a.captions} captions, {torch.get_num_threads()} threads, "
          f"best of {a.reps}; "
          f"text {tokens.shape[1]} -> {cut.shape[1]} tokens; runs {runs}")
    for k, v in res.items():
        print(f"  {k:20s} {v * 1e3:8.1f} ms")
    print(f"  AdamW fused speed-up x{res['adamw_loop'] / res['adamw_fused']:.1f}; "
          f"forward+backward with cut text x{res['fwd_bwd_text_full'] / res['fwd_bwd_text_cut']:.2f}, "
          f"in runs x{res['fwd_bwd_text_full'] / res['fwd_bwd_text_runs']:.2f}, math attention on top "
          f"x{res['fwd_bwd_text_runs'] / res['fwd_bwd_runs_math_attn']:.2f}; patch embedding as a "
          f"product x{res['patch_embed_conv'] / res['patch_embed_matmul']:.1f}")
    return res


if __name__ == "__main__":
    main()
