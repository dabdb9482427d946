"""The training loop: build -> (resume) -> steps -> checkpoints/eval -> export."""
import json
import math
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from omegaconf import OmegaConf

from . import checkpoint as ckpt
from . import distributed as D
from . import models
from .config import to_yaml
from .data.steps import make_loader, spec_from_config
from .eval import build_evaluators
from .eval.spec import format_table
from .metrics import MetricsLog
from .schedule import lr_at
from .step import forward_losses


class StopRequested(Exception):
    pass


def make_accelerator(cfg):
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs
    import os
    # CPU multi-process runs need gloo; a single process must get no backend at all
    multi = int(os.environ.get("WORLD_SIZE", "1")) > 1
    kwargs = [InitProcessGroupKwargs(backend="gloo")] if multi and not torch.cuda.is_available() else []
    return Accelerator(kwargs_handlers=kwargs)


def param_groups(model, weight_decay):
    # as open_clip: no decay on gains, biases, embeddings' scale and logit_scale
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


class Trainer:
    def __init__(self, cfg):
        self.cfg = cfg
        self.acc = make_accelerator(cfg)
        self.device = self.acc.device
        self.rank, self.world = D.rank(), D.world_size()
        self.is_main = self.rank == 0
        self.run_dir = Path(cfg.run_dir)
        torch.manual_seed(cfg.seed)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(to_yaml(cfg))
        D.barrier()

        m = cfg.model
        model, self.preprocess_train, self.preprocess_val, self.tokenizer = models.create(m.name, m.pretrained)
        models.lock_towers(model, m)
        self.optimizer = torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                           betas=(cfg.optim.beta1, cfg.optim.beta2), eps=cfg.optim.eps)
        self.model, self.optimizer = self.acc.prepare(model, self.optimizer)
        if m.compile:
            self.model = torch.compile(self.model)
        self.step = 0
        self.samples_seen = 0
        self.nonfinite_total = 0
        self.stop_signal = None
        self.evaluators = build_evaluators(cfg.eval, cfg.data.root) if self.is_main else {}
        self._resume()
        self.metrics = MetricsLog(self.run_dir, cfg.logger, self.is_main,
                                  OmegaConf.to_container(cfg, resolve=True))

    @property
    def raw_model(self):
        return self.acc.unwrap_model(self.model)

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self):
        return {"model": self.raw_model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "step": self.step, "samples_seen": self.samples_seen,
                "nonfinite_total": self.nonfinite_total, "rng": ckpt.rng_state(),
                "data_position": {"steps_consumed": self.step}}

    def save(self):
        if self.is_main:
            path = ckpt.save(self.run_dir, self.step, self.state_dict(), self.cfg.checkpoint.keep_last)
            print(f"[hnclip] checkpoint {path}", flush=True)
        D.barrier()

    def _resume(self):
        path = ckpt.latest(self.run_dir) if self.cfg.checkpoint.resume else None
        if path is None:
            return
        state = ckpt.load(path)
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.samples_seen = state["step"], state["samples_seen"]
        self.nonfinite_total = state.get("nonfinite_total", 0)
        ckpt.set_rng_state(state["rng"])
        if self.is_main:
            print(f"[hnclip] resumed from {path} at step {self.step}", flush=True)

    # -- signals: SLURM's warning signal or a polite kill -> checkpoint and exit ----------
    def _install_signals(self):
        def handler(signum, frame):
            self.stop_signal = signum
        for s in (signal.SIGUSR1, signal.SIGTERM):
            signal.signal(s, handler)

    # -- the loop -------------------------------------------------------------------------
    def train(self):
        cfg = self.cfg
        self._install_signals()
        spec = spec_from_config(cfg.data, cfg.seed, self.rank, self.world)
        loader = make_loader(spec, self.preprocess_train, self.tokenizer, cfg.data.workers, start_step=self.step)
        it = iter(loader)
        skipped_window = Counter()
        nonfinite_in_row = 0
        t_last = time.perf_counter()
        while self.step < cfg.optim.steps:
            if D.any_rank(self.stop_signal is not None, self.device):
                self.save()
                raise StopRequested(f"signal {self.stop_signal}: checkpointed at step {self.step}")
            t0 = time.perf_counter()
            batch = next(it)
            data_time = time.perf_counter() - t0
            skipped_window.update(batch.get("skipped", {}))
            lr = lr_at(self.step, cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.steps, cfg.optim.schedule)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.model.precision == "bf16"):
                loss, logs = forward_losses(self.model, batch, cfg.loss, self.device)
            self.optimizer.zero_grad(set_to_none=True)
            self.acc.backward(loss)
            finite = self._grads_finite(loss)
            if finite:
                if cfg.optim.grad_clip > 0:
                    self.acc.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
                self.optimizer.step()
                with torch.no_grad():
                    self.raw_model.logit_scale.clamp_(0, math.log(100))
                nonfinite_in_row = 0
            else:
                self.optimizer.zero_grad(set_to_none=True)
                nonfinite_in_row += 1
                self.nonfinite_total += 1
                if nonfinite_in_row >= cfg.optim.max_nonfinite_in_row:
                    raise FloatingPointError(
                        f"{nonfinite_in_row} non-finite steps in a row at step {self.step}; "
                        f"the latest checkpoint (before them) is in {self.run_dir}/checkpoints")
            n_local = batch["pairs"]["images"].shape[0] + (batch["sets"]["images"].shape[0] if "sets" in batch else 0)
            self.samples_seen += n_local * self.world
            self.step += 1
            t_now = time.perf_counter()
            step_time, t_last = t_now - t_last, t_now
            logs = {k: float(D.mean_over_ranks(v)) for k, v in logs.items()}
            logs.update({"lr": lr, "samples_per_s": n_local * self.world / step_time,
                         "data_time": data_time, "step_time": step_time,
                         "nonfinite_steps": self.nonfinite_total})
            logs.update({f"data/{k}": v for k, v in skipped_window.items()})
            self.metrics.log(self.step, logs)
            if self.is_main and (self.step % cfg.logger.log_every == 0 or self.step == 1):
                print(f"[hnclip] step {self.step}/{cfg.optim.steps} loss {logs['loss/total']:.4f} "
                      f"clip {logs['loss/clip']:.4f} hn_i2t {logs.get('loss/hn_i2t', 0):.4f} "
                      f"hn_t2i {logs.get('loss/hn_t2i', 0):.4f} lr {lr:.2e} "
                      f"{logs['samples_per_s']:.0f} samples/s data {data_time * 1000:.0f} ms", flush=True)
                skipped_window.clear()
            if cfg.checkpoint.every_steps and self.step % cfg.checkpoint.every_steps == 0 and self.step < cfg.optim.steps:
                self.save()
            if cfg.eval.every_steps and self.step % cfg.eval.every_steps == 0 and self.step < cfg.optim.steps:
                self.evaluate()
        self.save()
        return self.finish()

    def _grads_finite(self, loss):
        ok = bool(torch.isfinite(loss.detach()))
        if ok:
            for p in self.model.parameters():
                if p.grad is not None and not torch.isfinite(p.grad).all():
                    ok = False
                    break
        return not D.any_rank(not ok, self.device)

    def evaluate(self):
        results = {}
        if self.is_main:
            for name, ev in self.evaluators.items():
                for k, v in ev.run(self.raw_model, self.tokenizer, self.preprocess_val, self.device).items():
                    results[f"eval/{name}/{k}"] = v
            self.metrics.log(self.step, results)
        D.barrier()
        return results

    def finish(self):
        results = self.evaluate()
        if self.is_main:
            export = models.export_for_open_clip(self.raw_model, self.cfg.model.name, self.run_dir / "final")
            spec = {k[len("eval/spec/"):]: v for k, v in results.items() if k.startswith("eval/spec/")}
            (self.run_dir / "eval_final.json").write_text(json.dumps(spec, indent=2))
            print(f"\n[hnclip] done: {self.step} steps. open_clip weights: {export}")
            if spec:
                print(format_table(spec), flush=True)
        self.metrics.close()
        D.barrier()
        return results
