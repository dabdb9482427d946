"""The training forward's attention kernel (train/attention.py): the math kernel on the CPU
under bf16 autocast, torch's own choice elsewhere, and the same attention either way."""
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from train import attention, models

CPU = torch.device("cpu")


def _kernels_called(fn):
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.name for e in prof.events() if "scaled_dot_product" in e.name}


def test_cpu_bf16_forward_and_backward_run_the_math_kernel():
    q, k, v = (torch.randn(2, 4, 50, 16, requires_grad=True) for _ in range(3))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16), attention.kernel_for(CPU, bf16=True):
            F.scaled_dot_product_attention(q, k, v).float().sum().backward()
    called = _kernels_called(step)
    assert called and not any("flash" in name for name in called), called
    # torch's own choice on the CPU is the flash kernel: the context is what changed it
    def default():
        with torch.autocast("cpu", dtype=torch.bfloat16), attention.kernel_for(CPU, bf16=False):
            F.scaled_dot_product_attention(q, k, v).float().sum().backward()
    assert any("flash" in name for name in _kernels_called(default))


def test_the_model_gives_the_same_features_with_either_kernel():
    torch.manual_seed(0)
    model = models.create("hnclip-tiny")[0]
    images, tokens = torch.randn(4, 3, 64, 64), torch.randint(1, 1000, (4, 32))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = model(image=images, text=tokens)[:2]
        with attention.kernel_for(CPU, bf16=True):
            got = model(image=images, text=tokens)[:2]
    for a, b in zip(got, want):
        torch.testing.assert_close(a.float(), b.float(), rtol=0.05, atol=0.05)
