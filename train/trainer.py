"""The training loop: build -> (resume) -> steps -> checkpoints/eval -> export."""
import json
import math
import os
import shutil
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import torch
from omegaconf import OmegaConf

from . import (
    attention,
    checkpoint as ckpt,
    distributed as D,
    lora,
    models,
    patch_embed,
    run_compat,
    signals,
    text_trim,
)
from .accumulate import accumulated_passes, prepare, whole_step_loss
from .config import batch_summary, to_yaml
from .data import jpeg
from .data.device_decode import decoder_for
from .data.steps import make_loader, spec_from_config
from .eval import build_evaluators
from .eval.during_training import final_summary
from .losses import trusted_inputs
from .metrics import MetricsLog, skip_counts, skip_logs
from .schedule import lr_at
from .step import forward_losses

DEVICE_DECODE_FALLBACK = "device_decode_fallback"  # train/data/device_decode.py counts it


class StopRequested(Exception):
    pass


@dataclass
class StepFlags:
    """What every rank agrees on after a step's forward and before its backward, from one
    summed vector (one collective, one host read): [stop, loss bad, device-decode fallbacks,
    samples, skip counts in SKIP_REASONS order]."""
    stop_requested: bool = False   # a stop signal reached some rank
    loss_nonfinite: bool = False   # some rank's loss was NaN/Inf, or its forward raised
    skipped: dict = field(default_factory=dict)  # data/* skips this step, summed over ranks
    samples: int = 0               # items in the step, all ranks (data.decode=cuda may drop some)

    @property
    def take(self) -> bool:
        return not self.loss_nonfinite

    @staticmethod
    def pack(stop: bool, loss_ok, skipped, device, samples: int = 0):
        skipped = dict(skipped)
        # not a skip (the image is trained on) but counted beside them: data.decode=cuda
        fallbacks = float(skipped.pop(DEVICE_DECODE_FALLBACK, 0))
        head = torch.tensor([float(stop), fallbacks, float(samples)], dtype=torch.float64, device=device)
        counts = torch.tensor(skip_counts(skipped), dtype=torch.float64, device=device)
        return torch.cat([head[:1], (~loss_ok).to(torch.float64).reshape(1), head[1:], counts])

    @classmethod
    def unpack(cls, summed: list):
        skipped = skip_logs(summed[4:])
        if summed[2]:
            skipped[DEVICE_DECODE_FALLBACK] = int(round(summed[2]))
        return cls(stop_requested=summed[0] > 0, loss_nonfinite=summed[1] > 0, skipped=skipped,
                   samples=int(round(summed[3])))


@dataclass
class StepResult:
    """One train_step's outcome, the same on every rank."""
    flags: StepFlags
    grad_nonfinite: bool  # the loss was finite but the gradient norm was not: update not applied
    logs: dict            # the step's scalars averaged over ranks; NaN loss when skipped
    lr: float
    samples: int          # items this step, all ranks
    data_time: float      # seconds waiting for the loader

    @property
    def taken(self) -> bool:
        return self.flags.take and not self.grad_nonfinite

    def why(self) -> str:
        return "non-finite loss" if self.flags.loss_nonfinite else "non-finite gradient norm"


@dataclass
class Cadence:
    """When the loop saves, evaluates and prints: decided here and nowhere else (torchtitan's
    checkpointer `_should_save` and validator `should_validate`). The end-of-run save,
    evaluation and export follow the loop and are not scheduled here."""
    steps: int
    save_every: int
    eval_every: int
    print_every: int

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg.optim.steps, cfg.checkpoint.every_steps, cfg.eval.every_steps, cfg.logger.log_every)

    def should_save(self, step: int, healthy: bool) -> bool:
        # no periodic checkpoint inside a non-finite streak: the latest one stays a good one
        return bool(self.save_every) and step % self.save_every == 0 and step < self.steps and healthy

    def should_eval(self, step: int) -> bool:
        return bool(self.eval_every) and step % self.eval_every == 0 and step < self.steps

    def should_print(self, step: int, taken: bool) -> bool:
        return taken and (step % self.print_every == 0 or step == 1)


def make_accelerator(cfg):
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs
    # CPU multi-process runs need gloo; a single process must get no backend at all
    multi = int(os.environ.get("WORLD_SIZE", "1")) > 1
    # a lost rank (stopped, hung, unreachable) ends the run after this long instead of the
    # backend's default (30 min on gloo): the survivors then name it (train/distributed.py)
    timeout = timedelta(seconds=cfg.distributed.timeout_s)
    if not multi:
        kwargs = []
    elif torch.cuda.is_available():
        kwargs = [InitProcessGroupKwargs(timeout=timeout)]
    else:
        kwargs = [InitProcessGroupKwargs(backend="gloo", timeout=timeout)]
    # Without a GPU, accelerate opens a gloo group but leaves distributed_type NO unless told
    # cpu=True: the model is then not wrapped in DDP and each rank silently trains its own copy
    # (the ranks' weights drift apart). DeepSpeed brings its own CPU backend and refuses cpu=True.
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
    cpu_ddp = multi and not torch.cuda.is_available() and not deepspeed
    return Accelerator(cpu=cpu_ddp, kwargs_handlers=kwargs)


def param_groups(model, weight_decay):
    # as open_clip: no decay on gains, biases, embeddings' scale and logit_scale
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_wd = p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
        (no_decay if no_wd else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def uses_deepspeed(acc) -> bool:
    return getattr(acc.state, "deepspeed_plugin", None) is not None


def fill_deepspeed_config(ds: dict, cfg, world: int) -> dict:
    """Fill the "auto" values DeepSpeed insists on (we hand it no dataloader to infer batch
    sizes from) and refuse what our loop cannot do under it. Edits ds in place."""
    if cfg.optim.accum_steps != 1:
        raise ValueError("optim.accum_steps > 1 is not supported with DeepSpeed: its engine steps "
                         "inside backward(); use more GPUs or ZeRO-3 to fit a bigger batch instead")
    if ds.get("gradient_accumulation_steps", 1) not in (1, "auto"):
        raise ValueError("gradient_accumulation_steps must be 1 in the DeepSpeed config: "
                         "one optimizer step per trainer step (see docs/scale.md)")
    micro = cfg.data.pairs_per_step + cfg.data.set_items_per_step
    for key, value in (("train_micro_batch_size_per_gpu", micro), ("gradient_accumulation_steps", 1),
                       ("train_batch_size", micro * world)):
        if ds.get(key, "auto") == "auto":
            ds[key] = value
    # the engine clips (our clip_grad_norm_ is not called under DeepSpeed)
    if ds.get("gradient_clipping", "auto") == "auto":
        ds["gradient_clipping"] = cfg.optim.grad_clip
    return ds


def scalars_as_vectors(model):
    """DeepSpeed 0.19 broadcasts parameters through a uint8 view, which fails for 0-d tensors
    (CLIP's logit_scale): give them shape [1]. Broadcasting in the losses is unaffected;
    _plain_copy() restores open_clip's shapes for evaluation and export."""
    for name, p in list(model.named_parameters()):
        if p.ndim == 0:
            owner = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            setattr(owner, name.rpartition(".")[2], torch.nn.Parameter(p.data.reshape(1), p.requires_grad))


class Trainer:
    def __init__(self, cfg):
        self.cfg = cfg
        self.stop_signal = None
        self._install_signals()  # early: a SLURM warning during start-up must not be lost
        # before anything in the run directory is touched (every rank reads, all fail alike)
        resume_note = run_compat.check(cfg, cfg.run_dir, bool(ckpt.checkpoints(cfg.run_dir)))
        self.acc = make_accelerator(cfg)
        self.device = self.acc.device
        self.rank, self.world = D.rank(), D.world_size()
        self.is_main = self.rank == 0
        self.run_dir = Path(cfg.run_dir)
        self.deepspeed = uses_deepspeed(self.acc)
        torch.manual_seed(cfg.seed)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        if self.is_main:
            print(f"[hnclip] {batch_summary(cfg, self.world)}", flush=True)
            if resume_note:
                print(f"[hnclip] {resume_note}", flush=True)
            if not cfg.checkpoint.resume:
                moved = run_compat.set_aside_previous_run(self.run_dir)
                if moved is not None:
                    print(f"[hnclip] checkpoint.resume=false: the previous run in {self.run_dir} "
                          f"was moved to {moved}; starting fresh", flush=True)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(to_yaml(cfg))
        D.barrier()

        m = cfg.model
        created = models.create(m.name, m.pretrained)
        model, self.preprocess_train, self.preprocess_val, self.tokenizer = created
        models.lock_towers(model, m)
        # adapters only (frozen base) when model.lora.enabled; before the optimizer sees requires_grad
        self.lora_params = lora.apply(model, m.lora)
        if self.lora_params and self.deepspeed:
            raise ValueError("model.lora.enabled with DeepSpeed is not supported (its engine checkpoints and "
                             "exports the full model); LoRA states are small enough for DDP")
        # the text tower runs only as long as the step's longest caption (same result, less work)
        self.trim_text = text_trim.enable(model)
        patch_embed.enable(model)  # the ViT's patch convolution as one matrix product (same result)
        if self.deepspeed:
            scalars_as_vectors(model)  # before the optimizer takes references to the parameters
        self.optimizer = torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                           betas=(cfg.optim.beta1, cfg.optim.beta2), eps=cfg.optim.eps,
                                           # one fused kernel over all parameters: 4-10x faster than
                                           # the per-tensor loop on CPU; DeepSpeed brings its own
                                           fused=None if self.deepspeed else True)
        # DeepSpeed's bf16 casts the weights themselves; autocast then makes the fp32 inputs match
        self.bf16 = m.precision == "bf16"
        if self.deepspeed:
            ds = self.acc.state.deepspeed_plugin.deepspeed_config
            fill_deepspeed_config(ds, cfg, self.world)
            self.bf16 = self.bf16 or bool(ds.get("bf16", {}).get("enabled", False))
        self.model, self.optimizer = self.acc.prepare(model, self.optimizer)
        if m.compile:
            self.model = torch.compile(self.model)
        self._plain = None  # DeepSpeed: a plain copy of the model for evaluation and export
        self.step = 0
        self.samples_seen = 0
        self.nonfinite_total = 0
        self.nonfinite_in_row = 0
        self.stop_requested = False     # set by a step's flag collective (_agree)
        self.skipped_total = Counter()  # data/* skips over the whole run, all ranks
        self.evaluators = build_evaluators(cfg.eval, cfg.data.root) if self.is_main else {}
        # data.decode=cuda: the images' decode, crop and normalisation, on this process's GPU
        self.device_decoder = decoder_for(cfg.data.decode, self.preprocess_train, self.device)
        self._resume()
        self.metrics = MetricsLog(self.run_dir, cfg.logger, self.is_main,
                                  OmegaConf.to_container(cfg, resolve=True), run_name=cfg.run_name)

    @property
    def raw_model(self):
        if self._plain is not None:
            return self._plain
        return self.acc.unwrap_model(self.model)

    def _plain_copy(self):
        """DeepSpeed only, every rank calls it: a plain fp32 open_clip model with the current
        weights on rank 0 (None elsewhere). ZeRO-3 shards the weights and hooks every forward
        into collectives, so rank 0 could not run the evaluators on the engine's module alone;
        ZeRO-1/2 keep bf16 weights with 1-element scalars."""
        state = self.acc.get_state_dict(self.model)  # ZeRO-3: gathered onto rank 0
        if not self.is_main:
            return None
        model = models.create(self.cfg.model.name, None)[0]
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        model.load_state_dict({k: v.float().reshape(shapes[k]) for k, v in state.items()})
        return model.to(self.device)

    def _evaluate_any(self):
        if not self.deepspeed:
            return self.evaluate()
        self._plain = self._plain_copy()
        try:
            return self.evaluate()
        finally:
            self._plain = None

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self):
        scaler = getattr(self.acc, "scaler", None)
        state = {"step": self.step, "samples_seen": self.samples_seen,
                 "nonfinite_total": self.nonfinite_total, "world_size": self.world,
                 "skipped_total": dict(self.skipped_total),
                 # the loader replays to this many loader steps (micro-batches) on resume
                 "data_position": {"steps_consumed": self.step * self.cfg.optim.accum_steps,
                                   "signature": self._data_signature()},
                 "grad_scaler": scaler.state_dict() if scaler is not None else None}
        if not self.deepspeed:  # under DeepSpeed the engine writes its (sharded) states
            state["model"] = lora.checkpoint_state(self.raw_model)   # with LoRA: the adapters only
            state["optimizer"] = self.optimizer.state_dict()
        return state

    def save(self):
        """Every rank takes part: rank 0 opens the temp dir, each rank writes its RNG (and,
        under DeepSpeed, its shard), rank 0 writes trainer.pt and the manifest last and renames
        atomically. A failure on any rank (a full disk) stops every rank with the error, the
        temp dir removed and the previous checkpoint the latest; the flag exchanges between
        the phases are the barriers."""
        tmp = ckpt.tmp_dir(self.run_dir, self.step)
        self._save_phase(lambda: ckpt.begin(self.run_dir, self.step) if self.is_main else None, tmp)
        rng_entry = {}

        def write_parts():
            rng_file = f"rng-rank{self.rank}.pt"
            rng_entry[rng_file] = ckpt.write_file(tmp / rng_file, ckpt.rng_state())
            if self.deepspeed:
                self.acc.save_state(str(tmp / "engine"))
        self._save_phase(write_parts, tmp)

        def commit():
            if self.is_main:  # rank 0's own RNG file is hashed as written; the others' are read back
                path = ckpt.commit(self.run_dir, self.step, self.state_dict(), self.cfg.checkpoint.keep_last,
                                   rng_entry)
                print(f"[hnclip] checkpoint {path}", flush=True)
        self._save_phase(commit, tmp)

    def _save_phase(self, fn, tmp):
        error = None
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every rank must learn of it before raising
            error = e
        if D.any_rank(error is not None, self.device):
            if self.is_main:
                shutil.rmtree(tmp, ignore_errors=True)
            if error is not None:
                raise error
            raise ckpt.CheckpointError(f"checkpoint {tmp} failed on another rank (its error is in its log); "
                                       f"the previous checkpoint is intact: {ckpt.latest(self.run_dir)}")

    def _resume(self):
        if self.is_main:
            for gone in ckpt.remove_leftovers(self.run_dir):
                print(f"[hnclip] removed {gone}: the leftover of a save that did not finish", flush=True)
        path = self._resume_point() if self.cfg.checkpoint.resume else None
        if path is None:
            return
        state = ckpt.load(path)
        if self.deepspeed:
            self.acc.load_state(str(path / "engine"))
        else:
            lora.load_checkpoint_state(self.raw_model, state["model"], source=str(path))
            self.optimizer.load_state_dict(state["optimizer"])
        scaler = getattr(self.acc, "scaler", None)
        if scaler is not None and state.get("grad_scaler"):
            scaler.load_state_dict(state["grad_scaler"])
        self.step, self.samples_seen = state["step"], state["samples_seen"]
        self.nonfinite_total = state.get("nonfinite_total", 0)
        self.skipped_total = Counter(state.get("skipped_total", {}))
        saved, now = state.get("data_position", {}).get("signature"), self._data_signature()
        if saved is not None and saved != now and self.is_main:
            # the replay is exact only for the same streams, seed, ranks and workers
            changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            print(f"[hnclip] WARNING: data setup changed since {path} ({', '.join(changed)}): "
                  f"training continues, but the data order is not the uninterrupted run's", flush=True)
        rng = ckpt.load_rng(path, self.rank)
        if rng is not None:
            ckpt.set_rng_state(rng)
        elif self.is_main:
            print(f"[hnclip] {path} has no RNG state for rank {self.rank} (saved with "
                  f"{state.get('world_size', '?')} ranks): resuming without it", flush=True)
        if self.is_main:
            dropped = ckpt.trim_metrics_after(self.run_dir, self.step)
            print(f"[hnclip] resumed from {path} at step {self.step} "
                  f"({dropped} metrics rows after it dropped)", flush=True)
        D.barrier()

    def _resume_point(self):
        """Rank 0 checks the checkpoints (manifest, weights_only load) and picks the newest
        good one; every rank then loads that step. -1: none; -2: none usable (rank 0 raises)."""
        step, error = -1, None
        if self.is_main:
            try:
                path = ckpt.resume_point(self.run_dir)
                step = ckpt.step_of(path) if path is not None else -1
            except ckpt.CheckpointError as e:
                step, error = -2, e
        step = D.broadcast_int(step, self.device)
        if step == -2:
            raise error or ckpt.CheckpointError(f"no usable checkpoint in {ckpt.root_of(self.run_dir)} "
                                                f"(see rank 0's log)")
        return ckpt.final_dir(self.run_dir, step) if step >= 0 else None

    def _data_signature(self):
        d = self.cfg.data
        sig = {"world": self.world, "workers": d.workers, "seed": self.cfg.seed,
               "accum_steps": self.cfg.optim.accum_steps,
               "streams": {k: v for k, v in OmegaConf.to_container(d, resolve=True).items()
                           if k in ("pairs", "sets", "pairs_per_step", "set_items_per_step",
                                    "resampled", "shuffle_buffer", "lookahead_sets")}}
        if d.decode == "cuda":  # a damaged JPEG is dropped later than in the CPU modes
            sig["decode"] = "cuda"
        return sig

    # -- signals: SLURM's warning signal or a polite kill -> checkpoint and exit ----------
    def _install_signals(self):
        # the DataLoader workers ignore them (train/signals.py): one SIGTERM to the whole job
        # (scancel, preemption) must not kill a worker under the trainer before it checkpoints
        signals.install(self._on_stop)

    def _on_stop(self, signum):
        self.stop_signal = signum

    # -- the loop: torchtitan's shape (train_step -> result; the cadence decides the rest) --
    def train(self):
        try:
            return self._train()
        except Exception as e:
            lost = D.lost_ranks_after(e)
            if lost is None:
                raise
            last = ckpt.latest(self.run_dir)
            what = (f"rank(s) {', '.join(map(str, lost))} stopped answering" if lost
                    else "a collective failed")
            msg = (f"{what} (rank {self.rank} waited up to distributed.timeout_s="
                   f"{self.cfg.distributed.timeout_s} s: {str(e).splitlines()[0][:200]}). "
                   f"The latest checkpoint is {last if last else '(none yet)'}")
            if self.stop_signal is not None:
                # the signal cannot be answered with a new checkpoint without every rank:
                # exit as a signalled run, so the job is requeued and resumes from the latest
                raise StopRequested(f"signal {self.stop_signal}, but {msg}; no new checkpoint") from e
            raise RuntimeError(msg) from e

    def _train(self):
        cfg = self.cfg
        spec = spec_from_config(cfg.data, cfg.seed, self.rank, self.world)
        loader = make_loader(spec, jpeg.for_decode(cfg.data.decode, self.preprocess_train), self.tokenizer,
                             cfg.data.workers, start_step=self.step * cfg.optim.accum_steps,
                             worker_nice=cfg.data.worker_nice)
        batches = iter(loader)
        cadence = Cadence.from_config(cfg)
        self._t_last = time.perf_counter()
        while self.step < cfg.optim.steps:
            result = self.train_step(batches)
            self.step += 1
            self._account(result, cadence)
            if cadence.should_save(self.step, healthy=self.nonfinite_in_row == 0):
                self.save()
            if cadence.should_eval(self.step):
                self._evaluate_any()
            if result.flags.stop_requested and self.step < cfg.optim.steps:
                self.save()
                who = f"signal {self.stop_signal}" if self.stop_signal else "a signal to another rank"
                raise StopRequested(f"{who}: checkpointed at step {self.step}")
        self.save()
        if self.deepspeed:
            # training is over: evaluation and the export get a plain fp32 model (values are
            # the engine's bf16 working copy, see docs/scale.md)
            self._plain = self._plain_copy()
        return self.finish()

    def train_step(self, batches) -> "StepResult":
        """One optimizer step (step self.step + 1): data, forward and backward, the step's one
        flag collective, the optimizer update when every rank agrees, and the averaged logs.
        Two host reads: the flags and the logged scalars."""
        cfg = self.cfg
        t0 = time.perf_counter()
        micro = [next(batches) for _ in range(cfg.optim.accum_steps)]
        if self.device_decoder is not None:  # data.decode=cuda: the loader handed over bytes
            micro = [self.device_decoder(b) for b in micro]
        data_time = time.perf_counter() - t0
        if self.trim_text:
            micro = text_trim.trim_batches(micro)
        lr = lr_at(self.step, cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.steps, cfg.optim.schedule)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        flags, logs, grad_ok = self._forward_backward(micro)
        self.stop_requested = self.stop_requested or flags.stop_requested
        grad_nonfinite = False
        if flags.take:  # gradients already clipped (_grad_norm), or by DeepSpeed's engine
            self._optimizer_step(grad_ok)
            logs, grad_nonfinite = self._mean_logs(logs, grad_ok)
        if not flags.take or grad_nonfinite:
            self.optimizer.zero_grad(set_to_none=True)
            logs = {"loss/total": float("nan")}
        return StepResult(flags=flags, grad_nonfinite=grad_nonfinite, logs=logs, lr=lr,
                          samples=flags.samples, data_time=data_time)

    def _account(self, result, cadence):
        """Counters, the metrics row and the console line of the step just taken (or skipped)."""
        self.samples_seen += result.samples
        t_now = time.perf_counter()
        step_time, self._t_last = t_now - self._t_last, t_now
        if result.taken:
            self.nonfinite_in_row = 0
        else:
            self.nonfinite_in_row += 1
            self.nonfinite_total += 1
            if self.is_main:
                print(f"[hnclip] step {self.step}: non-finite loss or gradient, step skipped "
                      f"({self.nonfinite_in_row} in a row, {self.nonfinite_total} in total; "
                      f"{result.why()})", flush=True)
        self.skipped_total.update(result.flags.skipped)
        logs = dict(result.logs)
        logs.update({"lr": result.lr, "samples_per_s": result.samples / step_time,
                     "data_time": result.data_time, "step_time": step_time,
                     "nonfinite_steps": self.nonfinite_total, "samples_seen": self.samples_seen,
                     "step_skipped": 0.0 if result.taken else 1.0})
        # this step's skips (every rank) and the run's running total, whatever logger.log_every
        logs.update({f"data/{k}": v for k, v in result.flags.skipped.items()})
        logs.update({f"data_total/{k}": v for k, v in self.skipped_total.items()})
        self.metrics.log(self.step, logs)
        if self.nonfinite_in_row >= self.cfg.optim.max_nonfinite_in_row:
            last = ckpt.latest(self.run_dir)
            raise FloatingPointError(
                f"{self.nonfinite_in_row} non-finite steps in a row (steps "
                f"{self.step - self.nonfinite_in_row + 1}..{self.step}): stopping. "
                f"The last good checkpoint is "
                f"{last if last else '(none yet: no checkpoint was written before them)'}; "
                f"lower optim.lr, check the data, or raise optim.max_nonfinite_in_row")
        if self.is_main and cadence.should_print(self.step, result.taken):
            print(f"[hnclip] step {self.step}/{self.cfg.optim.steps} loss {logs['loss/total']:.4f} "
                  f"clip {logs['loss/clip']:.4f} hn_i2t {logs.get('loss/hn_i2t', 0):.4f} "
                  f"hn_t2i {logs.get('loss/hn_t2i', 0):.4f} lr {result.lr:.2e} "
                  f"{logs['samples_per_s']:.0f} samples/s data {result.data_time * 1000:.0f} ms", flush=True)

    def _mean_logs(self, logs, grad_ok):
        """-> (the step's scalars averaged over ranks, whether the gradient norm was NaN/Inf):
        one collective and one host read for all of them, on a step every rank took."""
        names = list(logs)
        bad = (~grad_ok).to(torch.float64) if grad_ok is not None else torch.zeros((), dtype=torch.float64,
                                                                                    device=self.device)
        values = [torch.as_tensor(logs[k].detach() if torch.is_tensor(logs[k]) else logs[k],
                                  dtype=torch.float64, device=self.device).reshape(()) for k in names]
        summed = D.sum_over_ranks(torch.stack([bad.reshape(()), *values])).tolist()
        if 0 < summed[0] < self.world:
            raise RuntimeError(f"step {self.step + 1}: the gradient norm is finite on some ranks only "
                               f"({int(summed[0])} of {self.world} not): their gradients differ, "
                               f"which DDP's all-reduce should make impossible")
        return {k: v / self.world for k, v in zip(names, summed[1:])}, summed[0] > 0

    @contextmanager
    def _forward_context(self):
        """Every training forward's numerics: bf16 autocast when asked, the attention kernel
        for the device and precision (train/attention.py)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16), \
                attention.kernel_for(self.device, self.bf16):
            yield

    def _forward(self, fn):
        """Run a forward; a FloatingPointError (a loss that checks itself) becomes a missing
        loss, so this rank still reaches the step's flag collective with the others."""
        try:
            return fn()
        except FloatingPointError:
            return None, {}

    def _forward_backward(self, batches):
        """-> (StepFlags, logs, gradient-norm-finite device flag or None). The forward's loss
        is checked by every rank together before any backward (the step's flag collective):
        backward holds collectives of its own (the feature gathers' backward, DDP's gradient
        all-reduce), so a rank whose loss is NaN or whose forward raised must not leave the
        others waiting in them; all ranks skip the step together instead. With accumulation
        the loss checked is the whole step's, from the cached features (train/accumulate.py),
        which every pass's loss equals. Nothing here reads the device but the flags: the
        losses run without their input checks (the loader checked the set index on the CPU)."""
        with trusted_inputs():
            if len(batches) == 1:
                # the text tower in length-sorted runs (train/text_trim.py); not under
                # torch.compile, whose graph would be specialised to every plan
                trim = self.trim_text and not self.cfg.model.compile
                plan = text_trim.plan_for(batches[0]) if trim else None
                with self._forward_context(), text_trim.chunked(plan):
                    loss, logs = self._forward(
                        lambda: forward_losses(self.model, batches[0], self.cfg.loss, self.device))
                flags = self._agree(batches, self._loss_finite(loss))
                if not flags.take:
                    return flags, {}, None
                self.acc.backward(loss)
            else:
                no_sync = None if self.deepspeed else self.acc.no_sync
                prepared = prepare(self.model, batches, self.device, self._forward_context)
                loss, logs = self._forward(
                    lambda: whole_step_loss(prepared, self.cfg.loss, self.device, self._forward_context))
                flags = self._agree(batches, self._loss_finite(loss))
                if not flags.take:
                    return flags, {}, None
                for _, loss, pass_logs in accumulated_passes(self.model, batches, self.cfg.loss, self.device,
                                                             self._forward_context, no_sync, prepared):
                    logs = pass_logs
                    self.acc.backward(loss)
        if self.deepspeed:  # the engine clips and steps inside backward(): no norm of ours
            return flags, logs, None
        norm = self._grad_norm()
        if norm is None:
            return flags, logs, None
        return flags, dict(logs, grad_norm=norm), torch.isfinite(norm)

    def _optimizer_step(self, grad_ok):
        """The update, skipped on the device when the gradient norm is not finite: fused AdamW
        reads `found_inf` on the device (as under a GradScaler), so nothing waits here. The
        norm is the same on every rank (DDP averaged the gradients it is computed from); the
        logs' collective checks that (_mean_logs)."""
        inner = getattr(self.optimizer, "optimizer", self.optimizer)  # accelerate's wrapper
        if grad_ok is not None:
            inner.found_inf = (~grad_ok).float()
        try:
            self.optimizer.step()
        finally:
            if grad_ok is not None:
                inner.found_inf = None
        with torch.no_grad():
            self.raw_model.logit_scale.clamp_(0, math.log(100))

    def _loss_finite(self, loss):
        """A device flag, no host read: the forward returned a loss and it is finite."""
        if loss is None:
            return torch.zeros((), dtype=torch.bool, device=self.device)
        return torch.isfinite(loss.detach())

    def _grad_norm(self):
        """The gradient norm, computed once: clip with it (optim.grad_clip > 0) and check it
        for NaN/Inf (_optimizer_step). A non-finite norm makes the clipped gradients NaN too,
        but such a step is not applied. None without gradients."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if not grads:
            return None
        if self.cfg.optim.grad_clip > 0:
            return self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))

    def _agree(self, batches, loss_ok) -> "StepFlags":
        """The step's flag collective and its one host read: every rank's loss finite, a stop
        signal on any rank, and the loader's skip counts, summed over ranks; the same answer
        on every rank."""
        skipped = Counter()
        for b in batches:
            skipped.update(b.get("skipped", {}))
        samples = sum(b["pairs"]["images"].shape[0] + (b["sets"]["images"].shape[0] if "sets" in b else 0)
                      for b in batches)
        vector = StepFlags.pack(self.stop_signal is not None, loss_ok, skipped, self.device, samples)
        return StepFlags.unpack(D.sum_over_ranks(vector).tolist())

    def evaluate(self):
        results = {}
        if self.is_main:
            # per-suite frequency, the wandb example table and the final dynamics plot:
            # train/eval/during_training.py
            from .eval.during_training import run_due
            results = run_due(self.evaluators, self.step, self.step >= self.cfg.optim.steps, self.raw_model,
                              self.tokenizer, self.preprocess_val, self.device, self.metrics, self.run_dir)
        D.barrier()
        return results

    def finish(self):
        results = self.evaluate()
        if self.is_main:
            # LoRA: adapters merged into plain weights
            export = models.export_for_open_clip(lora.merged(self.raw_model), self.cfg.model.name,
                                                 self.run_dir / "final")
            final, table = final_summary(self.evaluators, results)
            (self.run_dir / "eval_final.json").write_text(json.dumps(final, indent=2))
            print(f"\n[hnclip] done: {self.step} steps. open_clip weights: {export}")
            if table:
                print(table, flush=True)
        self.metrics.close()
        D.barrier()
        return results
