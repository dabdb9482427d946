"""Two-process worker for tests/test_families_distributed.py.

    torchrun --standalone --nproc_per_node 2 tests/family_dist_worker.py OUT_DIR

Every rank builds its slice of a deterministic global batch (ranks hold different numbers of
pairs, set images, set captions and caption tokens), runs train.step.forward_losses through a
DistributedDataParallel-wrapped tiny open_clip SigLIP, CoCa or LoRA-adapted CLIP (float64),
backpropagates, and saves the rank-averaged logs and the parameter gradients. The test
recomputes them in one process on the concatenated batch."""
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import family_lib as FL  # noqa: E402
from train import distributed as D  # noqa: E402
from train.step import forward_losses  # noqa: E402


def run_case(model, batch, case):
    """-> (logs averaged over ranks as the trainer does, {param name: grad})."""
    model.zero_grad(set_to_none=True)
    total, logs = forward_losses(model, batch, FL.loss_cfg(case))
    total.backward()
    logs = {k: D.mean_over_ranks(v) for k, v in logs.items()}
    inner = model.module if hasattr(model, "module") else model
    return logs, {n: p.grad.detach().clone() for n, p in inner.named_parameters() if p.grad is not None}


def main():
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    r = dist.get_rank()
    for case in FL.CASES:
        model, tok = FL.make_case_model(case)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        torch.save(run_case(ddp, FL.rank_batch(case, r, tok), case), out / f"{case}_rank{r}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
