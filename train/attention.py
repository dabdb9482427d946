"""Which attention kernel the training forward runs.

On the CPU under bf16 autocast, torch's fused (flash) scaled-dot-product kernel is slow
backwards at CLIP's short sequences: ViT-B/32, 32 pairs, forward + backward 2.43 s with it and
1.86 s with the math kernel, which forms the attention weights as matrix products
(`bench/ab_step.py --model ViT-B-32 --batch 32 --precision bf16` times both). In fp32 the two
are even (hnclip-tiny: within 3 %), so torch's choice is kept there, and on a GPU, where the
fused kernels are the fast ones. The weights the math kernel keeps for backward are small at
these lengths (50 image tokens, at most 77 text tokens: under 10 MB a layer for 32 pairs).
Both compute the same attention; only rounding differs."""
from contextlib import nullcontext

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel


def kernel_for(device: torch.device, bf16: bool):
    """The context a training forward on `device` (under bf16 autocast or not) runs in."""
    if device.type == "cpu" and bf16:
        return sdpa_kernel([SDPBackend.MATH])
    return nullcontext()
