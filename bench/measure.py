"""Small measuring pieces of the training benchmark, each a pure-ish function so the tests can
check them: the machine's matmul peak, steady-state summaries of per-step timings, the loss's
memory as a function of the global batch, and running a child process for its peak RSS."""
import os
import statistics
import subprocess
import time

import torch


def matmul_peak(dtype=torch.float32, n=None, repeats=7, device="cpu"):
    """Median FLOP/s of an n x n matmul at the process's default thread count: the 'peak' that
    model FLOPs/s is measured against (the same threads the trainers get). On a GPU n=8192
    (a 2048^2 matmul is too small to fill one)."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    a @ b  # warm-up: thread pool, oneDNN / cuBLAS kernels
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times)


# Dense bf16 tensor-core peaks from the vendors' data sheets (FLOP/s, no sparsity): what model
# FLOPs utilisation (MFU) is quoted against. Matched on the device name, first match wins.
NOMINAL_BF16_PEAK = (("H200", 989.4e12), ("H100 PCIe", 756.0e12), ("H100", 989.4e12),
                     ("A100", 312.0e12), ("L40S", 362.1e12), ("L4", 121.0e12), ("A10", 125.0e12))


def nominal_bf16_peak(device_name: str):
    """The data-sheet bf16 peak of a GPU by name, or None for a device not in the table."""
    return next((peak for key, peak in NOMINAL_BF16_PEAK if key in device_name), None)


def steady_state(step_times, data_times, samples_per_step, warmup):
    """Summarise per-step wall times after `warmup` steps. samples/s is samples per step over
    the median step time: on a machine shared with other jobs a few steps get stalled for
    seconds, and the median is what the trainer does when it has the CPU. The mean-based
    figure (total samples over total time) is kept beside it."""
    if len(step_times) != len(data_times):
        raise ValueError(f"{len(step_times)} step times but {len(data_times)} data times")
    if len(step_times) <= warmup:
        raise ValueError(f"only {len(step_times)} steps, need more than the {warmup} warm-up steps")
    st, dt = step_times[warmup:], data_times[warmup:]
    total = sum(st)
    median = statistics.median(st)
    return {"steps": len(st), "step_s": median, "step_s_mean": total / len(st),
            "samples_per_s": samples_per_step / median,
            "samples_per_s_mean": samples_per_step * len(st) / total,
            "data_share": sum(dt) / total}


def run_with_rusage(cmd, env=None, cwd=None, log_path=None):
    """Run cmd; return (returncode, output text, peak RSS in MiB, wall seconds). The RSS is
    the child's own peak (wait4 also folds in its reaped descendants, e.g. data workers)."""
    t = time.perf_counter()
    with open(log_path or os.devnull, "w+") as log:
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        log.seek(0)
        text = log.read() if log_path else ""
    return p.returncode, text, ru.ru_maxrss / 1024, wall


def synthetic_sets(n_items, k=3, offset=0, seed=0):
    """A SetIndex of n_items images in sets of k (one caption per image, one-to-one), with
    distinct content ids, numbered from item `offset` (as rank r of a job would see them)."""
    from train.losses import SetIndex
    i = torch.arange(n_items) + offset
    sid = i // k
    return SetIndex(img_set=sid, img_cap=i.clone(), img_key=i + 10 ** 6,
                    cap_set=sid.clone(), cap_img=i.clone(), cap_key=i + 2 * 10 ** 6)


def loss_memory(n_pairs, n_items, world, dim=128, pool="step"):
    """Bytes saved for backward by rank 0's losses in a `world`-rank job with n_pairs pairs and
    n_items set items per rank: local queries against gathered keys, exactly the tensors
    train/step.py hands to clip_loss and hn_loss. Pure functions of tensors, so one process
    can measure what one rank of a bigger job holds."""
    from train.losses import clip_loss, hn_loss
    g = torch.Generator().manual_seed(0)
    feat = lambda n: torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=-1).requires_grad_()
    pi_all, pt_all = feat(n_pairs * world), feat(n_pairs * world)
    si_all, sc_all = feat(n_items * world), feat(n_items * world)
    scale = torch.tensor(10.0, requires_grad=True)
    idx = synthetic_sets(n_items * world)

    def losses():
        total = clip_loss(pi_all[:n_pairs], pt_all[:n_pairs], pi_all, pt_all, scale, 0)
        if n_items:
            l_i2t, l_t2i = hn_loss(si_all[:n_items], sc_all[:n_items], si_all, sc_all, scale, idx,
                                   0, 0, pool=pool)
            total = total + 0.2 * (l_i2t + l_t2i)
        return total

    # the gathered features themselves are the step's activations, not the loss's: exclude
    # them by counting only storages created inside the loss
    inputs = {t.untyped_storage().data_ptr() for t in (pi_all, pt_all, si_all, sc_all, scale)}
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in inputs:
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        losses()
    return sum(storages.values())
