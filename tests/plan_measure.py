"""Peak tensor memory of real training steps on the CPU, for tests/test_plan.py.

    python tests/plan_measure.py MODEL PAIRS SET_ITEMS CKPT(0/1) LORA(0/1) PRECISION

Prints one JSON line: the peak of the C heap in use (glibc mallinfo2: allocated chunks plus
mmapped blocks, where tensors live) above the level before the model was built, sampled after
every operator (a TorchDispatchMode) over two full steps (forward, backward, AdamW), so the
second step has the optimizer states a long run holds."""
import ctypes
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


_libc = ctypes.CDLL("libc.so.6")
_libc.mallinfo2.restype = _MallInfo2


def in_use() -> int:
    m = _libc.mallinfo2()
    return m.uordblks + m.hblkhd


class PeakTracker(TorchDispatchMode):
    peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        PeakTracker.peak = max(PeakTracker.peak, in_use())
        return out


def main():
    name, n_pairs, n_items, ckpt, use_lora, precision = sys.argv[1:7]
    n_pairs, n_items = int(n_pairs), int(n_items)
    torch.set_num_threads(1)
    from types import SimpleNamespace

    from train import lora, models
    from train.config import LossConfig
    from train.step import forward_losses
    from train.trainer import param_groups
    torch.manual_seed(0)
    tok = models.create(name)[3]
    k = 3   # sets of 3 images and 3 captions
    texts = [f"a photo of {i % 9} small red cubes to the left of a dog" for i in range(n_pairs + n_items)]
    batch = {"pairs": {"images": torch.randn(n_pairs, 3, 64, 64), "tokens": tok(texts[:n_pairs])},
             "sets": {"images": torch.randn(n_items, 3, 64, 64), "tokens": tok(texts[n_pairs:]),
                      "img_set": torch.arange(n_items) // k, "cap_set": torch.arange(n_items) // k,
                      "img_cap": torch.arange(n_items), "cap_img": torch.arange(n_items),
                      "img_key": torch.arange(n_items), "cap_key": torch.arange(n_items)}}
    base = in_use()
    model = models.create(name)[0]
    if ckpt == "1":
        model.set_grad_checkpointing(True)
    if use_lora == "1":
        lora.apply(model, SimpleNamespace(enabled=True, rank=8, alpha=16.0, dropout=0.0,
                                          targets=["attn", "mlp"], towers=["image", "text"], layers=None))
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, fused=True)
    cfg = LossConfig()
    with PeakTracker():
        for _ in range(2):
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss, _ = forward_losses(model, batch, cfg)
            loss.backward()
            opt.step()
    print(json.dumps({"peak_bytes": PeakTracker.peak - base}))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
