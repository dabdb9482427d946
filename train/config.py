"""The configuration schema. YAML in conf/ holds the values; these dataclasses say which keys
exist and their types, so a misspelled key or a wrong type stops the run before any work."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


@dataclass
class ModelConfig:
    name: str = "hnclip-tiny"          # open_clip model name (or one of ours in train/model_configs)
    pretrained: Optional[str] = None   # open_clip tag ("openai") or a checkpoint path; None = random init
    precision: str = "fp32"            # fp32 | bf16 (autocast)
    grad_checkpointing: bool = False   # trade compute for activation memory
    lock_image: bool = False           # freeze the whole image tower
    lock_image_unlocked_groups: int = 0  # ...but leave the last N layer groups trainable
    lock_text: bool = False
    lock_text_unlocked_layers: int = 0
    compile: bool = False              # torch.compile the model


@dataclass
class PairSourceConfig:
    urls: str = ""                     # brace-expanded webdataset URL list (local path or pipe:)
    weight: float = 1.0                # sampling weight among pair sources


@dataclass
class DataConfig:
    root: str = "data/default"         # where the embedded default data lives (made by hn_data)
    pairs: List[PairSourceConfig] = field(default_factory=list)
    sets: List[PairSourceConfig] = field(default_factory=list)
    pairs_per_step: int = 64           # B_pair per rank per step
    set_items_per_step: int = 24       # B_hn images per rank per step, packed from whole sets
    resampled: bool = True             # endless sampling with replacement of shards; else epochs
    shuffle_buffer: int = 256
    workers: int = 1
    skip_missing_shards: bool = False  # a missing shard is an error unless this is set
    lookahead_sets: int = 32           # set-batcher buffer for packing whole sets exactly


@dataclass
class LossConfig:
    hn_weight: float = 0.2             # lambda in L = L_clip + lambda * L_hn
    clip_weight: float = 1.0           # weight of L_clip; 0 = L_hn only (SPEC Table 3, row 2)
    hn_negatives: str = "step"         # set | step | step+pairs: which captions/images form T
    mask_duplicates: bool = True       # identical captions/images in two sets are never negatives
    sets_in_clip_loss: bool = False    # do candidate-set items also enter L_clip
    hn_form: str = "softmax"           # softmax (SPEC) | sigmoid (each hard negative a negative pair); docs/families.md
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
    every_steps: int = 0               # 0 = only at the end
    batch_size: int = 128
    benchmarks: List[str] = field(default_factory=lambda: ["spec"])
    suites: Dict[str, Any] = field(default_factory=dict)  # per-benchmark options {name: {type, every_steps, ...}}; docs/diagnosis.md
    examples: int = 4                  # candidate sets per benchmark in the wandb example table (0 = none)


@dataclass
class LoggerConfig:
    wandb: bool = True
    wandb_mode: str = "offline"        # offline | online | disabled
    project: str = "hnclip"
    run_name: Optional[str] = None
    log_every: int = 10                # print progress every N steps (metrics file gets every step)


@dataclass
class CheckpointConfig:
    every_steps: int = 0               # 0 = only at the end
    keep_last: int = 2
    resume: bool = True                # resume from the latest checkpoint in run_dir if present


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    seed: int = 0
    deterministic: bool = False        # torch deterministic algorithms (exact resume tests)
    run_dir: str = "outputs/default"   # one directory every rank agrees on
    run_name: str = "default"


class ConfigError(ValueError):
    pass


CHOICES = {
    "model.precision": ("fp32", "bf16"),
    "loss.hn_negatives": ("set", "step", "step+pairs"),
    "loss.hn_form": ("softmax", "sigmoid"),
    "optim.schedule": ("cosine", "constant"),
    "logger.wandb_mode": ("offline", "online", "disabled"),
}


def validate(cfg: Any) -> Config:
    """Merge a composed config onto the schema; raise ConfigError naming the bad key."""
    schema = OmegaConf.structured(Config)
    try:
        merged = OmegaConf.merge(schema, cfg)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise ConfigError(f"invalid config key '{key}': {e.msg if hasattr(e, 'msg') else e}") from None
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(merged, key)
        if value not in allowed:
            raise ConfigError(f"invalid config value {key}={value!r}; choose one of {allowed}")
    for key in ("data.pairs_per_step", "optim.steps", "optim.accum_steps"):
        if OmegaConf.select(merged, key) < 1:
            raise ConfigError(f"invalid config value {key}: must be >= 1")
    if merged.data.set_items_per_step and merged.data.set_items_per_step < 2:
        raise ConfigError("invalid config value data.set_items_per_step: 0 (no sets) or >= 2")
    return merged


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def register_schema():
    """Register the schema with Hydra so composition itself starts from every key and its
    type: `model.compile=true` works without a '+', and a typo fails at composition."""
    from hydra.core.config_store import ConfigStore
    ConfigStore.instance().store(name="hnclip_schema", node=Config)


register_schema()
