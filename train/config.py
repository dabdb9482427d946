"""The configuration schema. These dataclasses say which keys exist, their types and their
defaults; the YAML group files in conf/ repeat the defaults so a reader sees them, and a test
keeps the two equal. A misspelled key (with or without Hydra's '+'), a wrong type or an
out-of-range value stops the run before any work, naming the key."""
import os
import typing
from dataclasses import dataclass, field, is_dataclass
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hn_data import cli
from hn_data.cli import schema_keys, unknown_key_message


@dataclass
class LoraConfig:
    enabled: bool = False              # train LoRA adapters only (train/lora.py); the export merges them
    rank: int = 8
    alpha: float = 16.0                # adapters scale by alpha / rank
    dropout: float = 0.0               # must be 0 (adapters are weight parametrizations: docs/families.md)
    # attn: q/k/v + output projection; mlp: both layers
    targets: List[str] = field(default_factory=lambda: ["attn", "mlp"])
    towers: List[str] = field(default_factory=lambda: ["image", "text"])
    layers: Optional[List[int]] = None  # block indices in each tower (negative from the end); None = all


@dataclass
class ModelConfig:
    # open_clip model name, ours (train/model_configs), local-dir:DIR or hf-hub:ORG/REPO
    name: str = "hnclip-tiny"
    pretrained: Optional[str] = None   # open_clip tag ("openai") or a checkpoint path; None = random init
    precision: str = "fp32"            # fp32 | bf16 (autocast)
    grad_checkpointing: bool = False   # trade compute for activation memory
    lock_image: bool = False           # freeze the whole image tower
    lock_image_unlocked_groups: int = 0  # ...but leave the last N layer groups trainable
    lock_text: bool = False
    lock_text_unlocked_layers: int = 0
    compile: bool = False              # torch.compile the model
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class PairSourceConfig:
    urls: str = ""                     # brace-expanded webdataset URL list (local path or pipe:)
    weight: float = 1.0                # sampling weight among pair sources


@dataclass
class DataConfig:
    root: str = "data/default"         # where the embedded default data lives (made by hn_data)
    pairs: List[PairSourceConfig] = field(default_factory=lambda: [
        PairSourceConfig("${data.root}/pairs/pairs-{000000..000007}.tar", 1.0)])
    sets: List[PairSourceConfig] = field(default_factory=lambda: [
        PairSourceConfig("${data.root}/sets/sets-{000000..000007}.tar", 1.0)])
    pairs_per_step: int = 64           # B_pair per rank per step
    set_items_per_step: int = 24       # B_hn images per rank per step, packed from whole sets
    # the same two counts for the whole step, all ranks together; null = the per-rank keys rule.
    # Set, each rank takes 1/(world size x optim.accum_steps) of it, so a recipe means the same
    # batch on any number of GPUs.
    global_pairs_per_step: Optional[int] = None
    global_set_items_per_step: Optional[int] = None
    resampled: bool = True             # endless sampling with replacement of shards; else epochs
    shuffle_buffer: int = 256
    workers: int = 1
    # data workers run this much nicer than the trainer (0..19): where the loader shares cores
    # with the step (a CPU run, a node short of cores) the step, the critical path, goes first,
    # and the workers take the cycles it leaves; with cores to spare it changes nothing
    worker_nice: int = 10
    skip_missing_shards: bool = False  # a missing shard is an error unless this is set
    lookahead_sets: int = 32           # set-batcher buffer for packing whole sets exactly
    # an image with more pixels (read from its header) is skipped and counted
    max_image_pixels: int = 25_000_000
    # pil: the model's PIL transform | tensor: the same steps on uint8 tensors (train/data/jpeg.py)
    # | cuda: JPEGs decoded in batches on the GPU, cropped and normalised there (device_decode.py)
    decode: str = "pil"


@dataclass
class LossConfig:
    hn_weight: float = 0.2             # lambda in L = L_clip + lambda * L_hn
    clip_weight: float = 1.0           # weight of L_clip; 0 = L_hn only (SPEC Table 3, row 2)
    hn_negatives: str = "step"         # set | step | step+pairs: which captions/images form T
    mask_duplicates: bool = True       # identical captions/images in two sets are never negatives
    sets_in_clip_loss: bool = False    # do candidate-set items also enter L_clip
    # softmax (SPEC) | sigmoid (each hard negative a negative pair); docs/families.md
    hn_form: str = "softmax"
    caption_weight: float = 2.0        # CoCa only: weight of the captioning loss (open_clip's default)


@dataclass
class OptimConfig:
    steps: int = 300
    lr: float = 5e-4
    warmup_steps: int = 30
    schedule: str = "cosine"           # cosine | constant
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    grad_clip: float = 1.0             # 0 = off
    accum_steps: int = 1               # feature-cached accumulation: negatives span all micro-batches
    max_nonfinite_in_row: int = 10


@dataclass
class EvalConfig:
    spec_root: Optional[str] = None    # official SPEC layout; None = <data.root>/spec_heldout
    every_steps: int = 100             # the evaluation tick (0 = only at the end)
    batch_size: int = 128
    benchmarks: List[str] = field(default_factory=lambda: ["spec"])
    # per-benchmark options {name: {type, every_steps, ...}}; docs/diagnosis.md
    suites: Dict[str, Any] = field(default_factory=lambda: {"spec": {"classes": "procedural"}})
    examples: int = 4                  # candidate sets per benchmark in the wandb example table (0 = none)


@dataclass
class LoggerConfig:
    wandb: bool = True
    wandb_mode: str = "offline"        # offline | online | disabled
    project: str = "hnclip"
    run_name: Optional[str] = None
    log_every: int = 20                # print progress every N steps (metrics file gets every step)


@dataclass
class CheckpointConfig:
    every_steps: int = 100             # 0 = only at the end (also on SIGUSR1/SIGTERM)
    keep_last: int = 2
    resume: bool = True                # resume from the latest checkpoint in run_dir if present


@dataclass
class DistributedConfig:
    timeout_s: int = 600               # a collective waiting this long for a lost rank ends the run naming it


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    seed: int = 0
    deterministic: bool = False        # torch deterministic algorithms (exact resume tests)
    run_name: str = "default"          # each experiment preset names its own run
    run_dir: str = "outputs/${run_name}"  # one directory every rank agrees on


class ConfigError(ValueError):
    pass


CHOICES = {
    "model.precision": ("fp32", "bf16"),
    "loss.hn_negatives": ("set", "step", "step+pairs"),
    "loss.hn_form": ("softmax", "sigmoid"),
    "optim.schedule": ("cosine", "constant"),
    "logger.wandb_mode": ("offline", "online", "disabled"),
    "data.decode": ("pil", "tensor", "cuda"),
}

# key -> (lowest allowed, whether the lowest itself is allowed); None values are not checked
LOWER_BOUNDS = {
    "data.pairs_per_step": (1, True), "data.set_items_per_step": (0, True),
    "data.global_pairs_per_step": (1, True), "data.global_set_items_per_step": (0, True),
    "data.shuffle_buffer": (0, True), "data.workers": (0, True), "data.lookahead_sets": (1, True),
    "data.worker_nice": (0, True),
    "data.max_image_pixels": (1, True),
    "loss.hn_weight": (0, True), "loss.clip_weight": (0, True),
    "optim.steps": (1, True), "optim.lr": (0, False), "optim.warmup_steps": (0, True),
    "optim.weight_decay": (0, True), "optim.beta1": (0, True), "optim.beta2": (0, True),
    "optim.eps": (0, False), "optim.grad_clip": (0, True), "optim.accum_steps": (1, True),
    "optim.max_nonfinite_in_row": (1, True),
    "model.lock_image_unlocked_groups": (0, True), "model.lock_text_unlocked_layers": (0, True),
    "eval.every_steps": (0, True), "eval.batch_size": (1, True), "eval.examples": (0, True),
    "logger.log_every": (1, True),
    "checkpoint.every_steps": (0, True), "checkpoint.keep_last": (1, True),
}
UPPER_BOUNDS = {"optim.beta1": 1, "optim.beta2": 1,  # exclusive: Adam's betas are < 1
                "data.worker_nice": 20}  # nice values end at 19


def _unknown_keys(node, node_type, prefix=""):
    """Keys in a config that the schema does not define. Free-form dicts (typed Dict/Any) are
    left alone; list items typed as a dataclass are checked against it."""
    hints = typing.get_type_hints(node_type)
    bad = []
    for key in node.keys():
        name = f"{prefix}{key}"
        if key not in hints:
            bad.append(name)
            continue
        sub, hint = node[key], hints[key]
        if is_dataclass(hint) and isinstance(sub, DictConfig):
            bad += _unknown_keys(sub, hint, name + ".")
        elif typing.get_origin(hint) is list and isinstance(sub, ListConfig):
            item = typing.get_args(hint)[0]
            if is_dataclass(item):
                for i, element in enumerate(sub):
                    if isinstance(element, DictConfig):
                        bad += _unknown_keys(element, item, f"{name}.{i}.")
    return bad


def _check_closed(cfg):
    valid = schema_keys(Config)
    for key in _unknown_keys(cfg, Config):
        raise ConfigError(unknown_key_message(key, valid))


def _defined(dotted: str) -> bool:
    """Whether a command-line key names a schema key: a field, a list item by its index
    (data.pairs.0.weight), or anything below a free-form mapping (eval.suites.spec.root)."""
    hint = Config
    for part in dotted.split("."):
        if typing.get_origin(hint) is typing.Union:  # Optional[X]
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if hint is Any or hint is dict or typing.get_origin(hint) is dict:
            return True
        if typing.get_origin(hint) is list:
            if not part.isdigit():
                return False
            hint = (typing.get_args(hint) or (Any,))[0]
            continue
        if not is_dataclass(hint):
            return False
        hints = typing.get_type_hints(hint)
        if part not in hints:
            return False
        hint = hints[part]
    return True


def config_groups() -> list:
    """The config groups of conf/ (model, data, experiment, debug, ..., hydra/job_logging)."""
    from pathlib import Path
    root = Path(conf_dir())
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_dir() and p.name != "__pycache__")


def check_override_keys(overrides) -> None:
    """Every key a command line names exists (a schema key or a config group), before Hydra
    composes: a misspelled one, with or without '+', raises ConfigError naming the nearest valid
    keys, as validate() does for a key that reaches the composed config."""
    groups = config_groups()
    try:
        cli.check_override_keys(overrides, list(dict.fromkeys(schema_keys(Config) + groups)),
                                lambda key: key in groups or _defined(key))
    except cli.ConfigError as e:
        raise ConfigError(str(e)) from None


def _check_ranges(merged):
    for key, (low, inclusive) in LOWER_BOUNDS.items():
        value = OmegaConf.select(merged, key)
        if value is None:
            continue
        if value < low or (value == low and not inclusive):
            rule = f">= {low}" if inclusive else f"> {low}"
            raise ConfigError(f"invalid config value {key}={value}: must be {rule}")
    for key, high in UPPER_BOUNDS.items():
        value = OmegaConf.select(merged, key)
        if value >= high:
            raise ConfigError(f"invalid config value {key}={value}: must be < {high}")
    for key in ("data.set_items_per_step", "data.global_set_items_per_step"):
        if OmegaConf.select(merged, key) == 1:
            raise ConfigError(f"invalid config value {key}=1: 0 (no sets) or >= 2 (whole sets of K >= 2)")
    if merged.loss.hn_weight == 0 and merged.loss.clip_weight == 0:
        raise ConfigError("invalid config: loss.hn_weight and loss.clip_weight are both 0 (nothing to train)")
    for i, source in enumerate(list(merged.data.pairs) + list(merged.data.sets)):
        if source.weight <= 0:
            n_pairs = len(merged.data.pairs)
            which = f"data.pairs.{i}" if i < n_pairs else f"data.sets.{i - n_pairs}"
            raise ConfigError(f"invalid config value {which}.weight={source.weight}: must be > 0")


def _check_model(merged):
    from train.models import pretrained_problem
    problem = pretrained_problem(merged.model.name, merged.model.pretrained)
    if problem:
        raise ConfigError(problem)


def validate(cfg: Any) -> Config:
    """Merge a composed config onto the schema; raise ConfigError naming the bad key."""
    schema = OmegaConf.structured(Config)
    try:
        merged = OmegaConf.merge(schema, cfg)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise ConfigError(f"invalid config key '{key}': {e.msg if hasattr(e, 'msg') else e}") from None
    # Hydra's '+key=value' opens the struct flag, and the merge keeps what it added
    _check_closed(merged)
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(merged, key)
        if value not in allowed:
            raise ConfigError(f"invalid config value {key}={value!r}; choose one of {allowed}")
    _check_ranges(merged)
    _check_model(merged)
    _check_device(merged)
    return merged


def _check_device(merged):
    import torch
    if merged.data.decode == "cuda" and not torch.cuda.is_available():
        raise ConfigError("data.decode=cuda decodes JPEGs on the GPU, but this machine has no CUDA device "
                          "(torch.cuda.is_available() is False); use data.decode=tensor or data.decode=pil")


def world_size_from_env() -> int:
    """The number of processes the launcher (accelerate, torchrun, SLURM's srun) started; read
    from the environment so the batch is settled before any process group exists."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def apply_global_batch(cfg, world: int):
    """Turn data.global_* (when set) into the per-rank keys the loader reads, in place. A count
    that does not split evenly over world size x accumulation steps is a ConfigError: a silently
    rounded batch is a different recipe."""
    d, accum = cfg.data, cfg.optim.accum_steps
    share = world * accum
    problems, shares = [], {}
    for global_key, rank_key in (("global_pairs_per_step", "pairs_per_step"),
                                 ("global_set_items_per_step", "set_items_per_step")):
        total = d[global_key]
        if total is None:
            continue
        if total % share:
            problems.append(f"data.{global_key}={total} does not divide by world size {world} x "
                            f"optim.accum_steps {accum} = {share}")
        elif rank_key == "set_items_per_step" and total // share == 1:
            problems.append(f"data.{global_key}={total} over world size {world} x optim.accum_steps "
                            f"{accum} leaves 1 set item per rank (whole sets need >= 2)")
        else:
            shares[rank_key] = total // share
    if problems:
        raise ConfigError("; ".join(problems) + f": choose multiples of {share}, or set the per-rank "
                          "keys data.pairs_per_step / data.set_items_per_step instead")
    for rank_key, per_rank in shares.items():
        d[rank_key] = per_rank
    return cfg


def batch_summary(cfg, world: int) -> str:
    """The start-up line: what one step is on each rank and on all of them."""
    d, accum = cfg.data, cfg.optim.accum_steps
    per_rank = f"{d.pairs_per_step} pairs + {d.set_items_per_step} set items"
    if accum > 1:
        per_rank += f" x {accum} accumulation steps"
    return (f"world size {world}; per rank {per_rank}; global {d.pairs_per_step * world * accum} pairs + "
            f"{d.set_items_per_step * world * accum} set items per step")


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def conf_dir() -> str:
    """conf/: beside the package in a checkout (or an editable install), shipped inside it as
    train/conf in a wheel."""
    from pathlib import Path
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"hnclip's conf/ not found beside {here} nor inside it: a broken install?")


def register_schema():
    """Register the schema with Hydra so composition itself starts from every key and its
    type: `model.compile=true` works without a '+', and a typo fails at composition."""
    from hydra.core.config_store import ConfigStore
    ConfigStore.instance().store(name="hnclip_schema", node=Config)


register_schema()
