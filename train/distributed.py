"""Every torch.distributed call of the project lives here.

Works the same under accelerate's DDP and DeepSpeed (both initialise the default process
group) and without any group (single process: every function is the identity)."""
import time
import warnings

import torch
import torch.distributed as dist

# torch 2.14 marks the autograd all_gather deprecated in favour of the private
# torch.distributed._functional_collectives; open_clip 3.3 uses the same public call, and it is
# the one whose backward we test (tests/test_losses_distributed.py). Silenced around our own
# call only (gather_with_grad), not for the whole process.
_ALL_GATHER_DEPRECATED = "torch.distributed.nn.functional.all_gather is deprecated"


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def gather_with_grad(x: torch.Tensor, sizes: list = None) -> torch.Tensor:
    """Concatenate x from all ranks along dim 0 (rank order); gradients flow back to every
    rank's piece. Pieces may differ in length (candidate sets carry a variable number of
    captions): each is zero-padded to the longest, gathered, and cut back. The padding rows
    are sliced away before use, so their gradient is exactly zero and the backward (a sum
    over ranks of each piece's gradient: reduce-scatter on NCCL, all-to-all + sum on gloo)
    hands every rank the total gradient of its own rows. DDP and DeepSpeed then *average*
    parameter gradients over ranks; train/step.py scales each rank's loss to match.
    `sizes` (every rank's length) saves a collective when the caller already has them."""
    def all_gather(padded):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_ALL_GATHER_DEPRECATED, category=FutureWarning)
            return torch.distributed.nn.functional.all_gather(padded)
    return _gather_ragged(x, sizes, all_gather)


def gather_no_grad(x: torch.Tensor, sizes: list = None) -> torch.Tensor:
    """Concatenate integer metadata (ids, labels) from all ranks; variable lengths allowed."""
    def all_gather(padded):
        pieces = [torch.empty_like(padded) for _ in range(world_size())]
        dist.all_gather(pieces, padded.contiguous())
        return pieces
    return _gather_ragged(x, sizes, all_gather)


def _gather_ragged(x: torch.Tensor, sizes, all_gather) -> torch.Tensor:
    """all_gather(padded) -> every rank's piece, for pieces of different lengths along dim 0:
    all_gather wants one shape on every rank, so each piece is zero-padded to the longest
    and cut back to its own length afterwards."""
    if not is_initialized() or world_size() == 1:
        return x
    sizes = sizes or all_gather_sizes(x.shape[0], x.device)
    longest = max(sizes)
    padded = x
    if x.shape[0] < longest:
        padded = torch.cat([x, x.new_zeros((longest - x.shape[0],) + tuple(x.shape[1:]))])
    return torch.cat([p[:n] for p, n in zip(all_gather(padded), sizes)])


def all_gather_sizes(n: int, device) -> list:
    return [c[0] for c in all_gather_counts([n], device)]


def all_gather_counts(counts: list, device) -> list:
    """Every rank's list of integers, in one collective: result[r] is rank r's `counts`."""
    if not is_initialized() or world_size() == 1:
        return [list(counts)]
    t = torch.tensor(counts, device=device, dtype=torch.long)
    out = [torch.zeros_like(t) for _ in range(world_size())]
    dist.all_gather(out, t)
    return [[int(v) for v in o.tolist()] for o in out]


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """Average a detached scalar over ranks (for logging)."""
    if not is_initialized() or world_size() == 1:
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / world_size()


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    if not is_initialized() or world_size() == 1:
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y


def any_rank(flag: bool, device="cpu") -> bool:
    """True if flag is true on any rank (e.g. a preemption signal that reached one rank)."""
    if not is_initialized() or world_size() == 1:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier():
    if is_initialized():
        dist.barrier()


def broadcast_int(value: int, device="cpu") -> int:
    """Rank 0's value on every rank."""
    if not is_initialized() or world_size() == 1:
        return value
    t = torch.tensor([value], device=device, dtype=torch.long)
    dist.broadcast(t, 0)
    return int(t.item())


# What torch raises when a collective meets a dead, stopped or unreachable peer: a DistError
# (DistBackendError, DistNetworkError, ...), or a RuntimeError from inside the backend
_BACKENDS = ("gloo", "nccl")


def lost_ranks_after(error, wait_s: float = 10.0):
    """After an exception: None if it is not a failed collective; else the ranks that do not
    answer a roll call through the rendezvous store within wait_s (the survivors of a timeout
    all arrive here at about the same time). An empty list: every rank answered."""
    if not is_initialized() or world_size() == 1:
        return None
    text = str(error).lower()
    dist_error = getattr(dist, "DistError", None)
    if not ((dist_error is not None and isinstance(error, dist_error)) or
            (isinstance(error, RuntimeError) and any(k in text for k in _BACKENDS))):
        return None
    try:
        from datetime import timedelta
        store = dist.distributed_c10d._get_default_store()
        store.set_timeout(timedelta(seconds=wait_s))
        store.set(f"hnclip/alive/{rank()}", "1")
        keys = {r: f"hnclip/alive/{r}" for r in range(world_size())}
        deadline = time.monotonic() + wait_s
        missing = list(keys)
        while missing and time.monotonic() < deadline:
            missing = [r for r, k in keys.items() if not store.check([k])]
            time.sleep(0.2)
        return missing
    except Exception:  # noqa: BLE001 - the store's host may be the lost one
        return []
