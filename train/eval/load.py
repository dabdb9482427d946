"""Load any model the evaluation commands take: an open_clip preset (+ pretrained tag or weights
file), our export dir (RUN/final), a trainer checkpoint (RUN/checkpoints/step-N), a run dir
(its final export), hf:<repo id or dir> (transformers CLIP / SigLIP / BLIP: adapters/), or
coca-caption:<CoCa name> (CoCa's captioning score: adapters/coca.py)."""
import pickle
from pathlib import Path

import torch
from omegaconf import OmegaConf

from train import lora, models


def load_weights(file):
    """torch.load a file a user handed us without running code from it: weights_only=True
    unpickles tensors, containers and numbers only, and refuses anything else."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{file}: refused to load: it holds more than weights (objects that would run code "
                         f"when unpickled): {str(e).splitlines()[0]}") from None


def run_config(run_dir):
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a training run directory?")
    return OmegaConf.load(path)


def load(checkpoint=None, model=None, pretrained=None):
    """-> (model, preprocess, tokenizer, description)."""
    if checkpoint is None:
        if not model:
            raise ValueError("give a checkpoint path or a model name (+ pretrained)")
        if model.startswith(("hf:", "hf-itm:")):
            if pretrained:
                raise ValueError(f"--model {model} brings its own weights; drop --pretrained {pretrained}")
            from .adapters import load_hf
            prefix, _, source = model.partition(":")
            return load_hf(source, "itm" if prefix == "hf-itm" else "contrastive")
        if model.startswith("coca-caption:"):
            from .adapters import load_coca_caption
            return load_coca_caption(model.partition(":")[2], pretrained)
        m, _, pre, tok = models.create(model, pretrained)
        return m.eval(), pre, tok, f"{model}:{pretrained or 'random-init'}"
    path = Path(checkpoint)
    if (path / "final").is_dir() and (path / "config.yaml").is_file():
        path = path / "final"
    if path.name == "trainer.pt":
        path = path.parent
    if (path / "open_clip_config.json").is_file():
        names = [p for p in path.glob("*.json") if p.name != "open_clip_config.json"]
        if len(names) != 1:
            raise ValueError(f"{path}: expected one <model>.json beside open_clip_config.json, found {names}")
        import open_clip
        open_clip.add_model_config(names[0])
        m, _, pre, tok = models.create(names[0].stem, str(path / "open_clip_pytorch_model.bin"))
        return m.eval(), pre, tok, str(path)
    if (path / "trainer.pt").is_file():
        cfg = run_config(path.parent.parent)
        m, _, pre, tok = models.create(cfg.model.name, None)
        state = load_weights(path / "trainer.pt")
        if not isinstance(state, dict) or "model" not in state:
            raise ValueError(f"{path / 'trainer.pt'}: no 'model' state in this checkpoint (a DeepSpeed run? "
                             "evaluate its RUN/final export instead)")
        if lora.holds_adapters(state["model"]):   # a LoRA run: adapters only, on the run's own base
            m = lora.load_adapted(cfg, state["model"], source=path / "trainer.pt")
        else:
            m.load_state_dict(state["model"])
        return m.eval(), pre, tok, str(path)
    raise FileNotFoundError(f"{checkpoint}: not a run dir, an export dir (open_clip_config.json) "
                            "or a trainer checkpoint (trainer.pt)")


def initial_of(run_dir):
    """The weights a run started from: its pretrained tag/file, or (random init) the same seeded
    initialisation the trainer made: torch.manual_seed(cfg.seed) right before models.create."""
    cfg = run_config(run_dir)
    torch.manual_seed(cfg.seed)
    m, _, pre, tok = models.create(cfg.model.name, cfg.model.pretrained)
    return m.eval(), pre, tok, f"{cfg.model.name}:{cfg.model.pretrained or f'random-init(seed={cfg.seed})'}"


def eval_config(name_or_path="default", overrides=()):
    """An eval config group file (conf/eval/<name>.yaml or a path) + dotlist overrides, checked
    against the schema."""
    from train.config import EvalConfig
    path = Path(name_or_path)
    if not path.is_file():
        from train.config import conf_dir  # conf/ in a checkout, train/conf in a wheel
        path = Path(conf_dir()) / "eval" / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"eval config {name_or_path!r}: no such file or conf/eval/ entry")
    cfg = OmegaConf.merge(OmegaConf.structured(EvalConfig), OmegaConf.load(path),
                          OmegaConf.from_dotlist(list(overrides)))
    return cfg
