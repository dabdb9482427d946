"""One benchmark arm for our trainer, run in its own process by bench/bench_train.py so each
arm has a fresh heap (peak RSS) and the same thread pool.

    python bench/arm_ours.py '<json params>' <result.json>

It runs the real Trainer (train/trainer.py) for `steps` steps and reads the per-step wall
and data times the trainer itself logs. mode 'memory' swaps the trainer's data loader for a
cycle over batches already in memory: the same step code with no data loading (the
compute-only bound). Afterwards it times the step's parts on in-memory batches and counts
the model FLOPs of one step."""
import itertools
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.measure import steady_state  # noqa: E402
from train import text_trim  # noqa: E402


def compose(p):
    from hydra import compose as hcompose, initialize_config_dir

    from train.config import validate
    overrides = [f"model.name={p['model']}", "model.pretrained=null", f"model.precision={p['precision']}",
                 f"data.root={p['data_root']}", f"data.pairs_per_step={p['pairs']}",
                 f"data.set_items_per_step={p['set_items']}", f"data.workers={p['workers']}",
                 f"optim.steps={p['steps']}", "optim.warmup_steps=0", "logger.wandb=false",
                 "logger.log_every=100000", "eval.benchmarks=[]", "eval.every_steps=0",
                 "checkpoint.every_steps=0", "checkpoint.resume=false", f"run_dir={p['run_dir']}",
                 f"data.decode={p.get('decode', 'pil')}"]
    if "worker_nice" in p:
        overrides.append(f"data.worker_nice={p['worker_nice']}")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return validate(hcompose(config_name="config", overrides=overrides))


def prefetch(trainer, cfg, n):
    """n real batches from the project's loader, in the main process."""
    from train.data.steps import make_loader, spec_from_config
    spec = spec_from_config(cfg.data, cfg.seed, 0, 1)
    it = iter(make_loader(spec, trainer.preprocess_train, trainer.tokenizer, 0))
    return [next(it) for _ in range(n)]


class _Features(torch.nn.Module):
    """Stands in for the model inside forward_losses so the loss is timed on its own."""
    def __init__(self, img, txt, scale):
        super().__init__()
        self.out = (img, txt, scale)

    def forward(self, image=None, text=None):
        return self.out


def step_parts(trainer, batches, reps):
    """Median seconds of each part of the step, in the trainer's order, on in-memory batches.
    Pairs and set items get separate forwards here so each has its own time."""
    from train.step import forward_losses
    model, opt, cfg, dev = trainer.raw_model, trainer.optimizer, trainer.cfg, trainer.device
    amp = trainer._forward_context  # the trainer's autocast and attention kernel
    parts = defaultdict(list)
    if getattr(trainer, "trim_text", False):
        batches = [text_trim.trim_batches([b])[0] for b in batches]

    def now():
        # a part's time on an accelerator is known only once its kernels have run
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter()
    for i, b in zip(range(reps + 1), itertools.cycle(batches)):
        t = [now()]
        with amp():
            pi, pt, scale = model(image=b["pairs"]["images"].to(dev), text=b["pairs"]["tokens"].to(dev))[:3]
        t.append(now())
        if "sets" in b:
            with amp():
                si, st = model(image=b["sets"]["images"].to(dev), text=b["sets"]["tokens"].to(dev))[:2]
            pi, pt = torch.cat([pi, si]), torch.cat([pt, st])
        t.append(now())
        with amp():
            loss, _ = forward_losses(_Features(pi, pt, scale), b, cfg.loss, dev)
        t.append(now())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t.append(now())
        # as the trainer: the norm once, clipping with it; a non-finite one skips the update
        # on the device (fused AdamW's found_inf); then logit_scale's clamp
        norm = trainer._grad_norm()
        trainer._optimizer_step(None if norm is None else torch.isfinite(norm))
        t.append(now())
        if i == 0:
            continue  # warm-up
        for name, a, z in zip(("encode_pairs", "encode_sets", "loss", "backward", "optimizer"), t, t[1:]):
            parts[name].append(z - a)
    return {k: sorted(v)[len(v) // 2] for k, v in parts.items()}


def step_flops(trainer, batch):
    """Model FLOPs of one training step (forward + backward, losses included) on this batch as
    given (full-length or trimmed tokens). Attention runs through the math kernel here because
    the counter has no formula for the CPU flash kernel."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from train.step import forward_losses
    model, cfg = trainer.raw_model, trainer.cfg
    # as the trainer runs it: with the text tower in length-sorted runs when it does that
    plan = text_trim.plan_for(batch) if getattr(trainer, "trim_text", False) else None
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, text_trim.chunked(plan):
        loss, _ = forward_losses(model, batch, cfg.loss, trainer.device)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def run(p):
    import train.trainer as T
    from train.metrics import read_metrics
    cfg = compose(p)
    trainer = T.Trainer(cfg)
    batches = prefetch(trainer, cfg, p.get("memory_batches", 4))
    if p["mode"] == "memory":
        # the trainer's own loop, fed from memory: iter() of a cycle is the cycle itself
        T.make_loader = lambda *a, **k: itertools.cycle(batches)
    elif p["mode"] != "data":
        raise ValueError(f"unknown mode {p['mode']!r}")
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    trainer.train()
    rows = [r for r in read_metrics(cfg.run_dir) if "step_time" in r]
    b0 = batches[0]
    n_img = b0["pairs"]["images"].shape[0] + (b0["sets"]["images"].shape[0] if "sets" in b0 else 0)
    n_txt = b0["pairs"]["tokens"].shape[0] + (b0["sets"]["tokens"].shape[0] if "sets" in b0 else 0)
    out = steady_state([r["step_time"] for r in rows], [r["data_time"] for r in rows], n_img, p["warmup"])
    if trainer.device.type == "cuda":
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated(trainer.device) / 2 ** 20
    out.update(images_per_step=n_img, captions_per_step=n_txt, device=str(trainer.device),
               torch_threads=torch.get_num_threads(), optimizer=type(trainer.optimizer.optimizer
                                                                    if hasattr(trainer.optimizer, "optimizer")
                                                                    else trainer.optimizer).__name__)
    if p.get("parts_reps", 0):
        out["parts"] = step_parts(trainer, batches, p["parts_reps"])
    # FLOPs as executed (text cut to the longest caption when the trainer does that) and with
    # full-length text, which is what open_clip's trainer executes on the same batch
    full_text = {k: dict(v, text_lens=None) if isinstance(v, dict) else v for k, v in b0.items()}
    out["flops_per_step_full_text"] = step_flops(trainer, full_text)
    trimmed = text_trim.trim_batches([b0])[0] if getattr(trainer, "trim_text", False) else b0
    out["flops_per_step"] = step_flops(trainer, trimmed)
    out["text_tokens"] = [int(b0["pairs"]["tokens"].shape[1]), int(trimmed["pairs"]["tokens"].shape[1])]
    return out


if __name__ == "__main__":
    params = json.loads(sys.argv[1])
    result = run(params)
    Path(sys.argv[2]).write_text(json.dumps(result, indent=2))
