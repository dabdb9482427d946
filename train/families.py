"""Model families as open_clip defines them, and one forward for all of them.

The family decides the pair-stream objective (docs/families.md):
    clip    open_clip CLIP / CustomTextCLIP without logit_bias   softmax InfoNCE (L_clip)
    siglip  open_clip CLIP / CustomTextCLIP with a logit_bias    sigmoid pairwise loss (SigLIP, SigLIP 2)
    coca    open_clip CoCa                                      InfoNCE + caption_weight * captioning loss
It is read from the model object (its class and whether it learns a logit_bias), never from
the model's name: open_clip's own names are no guide (its SigLIP tokenizer is picked by a
name pattern, and a user's fine-tuned copy may be called anything)."""
import types
from dataclasses import dataclass
from typing import Optional

import torch

CLIP, SIGLIP, COCA = "clip", "siglip", "coca"
FAMILIES = (CLIP, SIGLIP, COCA)


class UnknownFamily(TypeError):
    pass


def unwrap(model):
    """The open_clip module inside DDP / DeepSpeed (.module) and torch.compile (._orig_mod)."""
    while True:
        inner = getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def _open_clip_family(m) -> Optional[str]:
    import open_clip
    from open_clip.model import CustomTextCLIP
    if isinstance(m, open_clip.CoCa):
        return COCA
    if isinstance(m, (open_clip.CLIP, CustomTextCLIP)):
        return SIGLIP if getattr(m, "logit_bias", None) is not None else CLIP
    return None


def detect(model) -> str:
    """The family of an open_clip model (wrapped or not); UnknownFamily for anything else."""
    m = unwrap(model)
    family = _open_clip_family(m)
    if family is None:
        raise UnknownFamily(
            f"model class {type(m).__module__}.{type(m).__name__} is not a family hnclip trains: "
            f"it knows open_clip's CLIP and CustomTextCLIP (softmax CLIP loss, or SigLIP's sigmoid loss "
            f"when the model has a logit_bias) and CoCa; see docs/families.md")
    if family == COCA and getattr(m, "logit_bias", None) is not None:
        raise UnknownFamily("a CoCa model with a logit_bias (a sigmoid-trained CoCa) is not a family hnclip "
                            "trains: its contrastive loss would be ambiguous")
    return family


def init_uninitialised(model):
    """For random-init models only. open_clip 3.3 creates CoCa's decoder projection
    (text_decoder.text_projection) with torch.empty and never initialises it (its
    MultimodalTransformer.init_parameters is not called, and would fail if it were: it reads
    a .transformer attribute the class lacks), so a random-init CoCa starts from whatever
    memory held, NaN at times. Initialise it as that method intends."""
    m = unwrap(model)
    if detect(m) == COCA:
        dec = m.text_decoder
        torch.nn.init.normal_(dec.text_projection.data, std=dec.width ** -0.5)


@dataclass
class Encoded:
    """One forward's outputs. caption_* are set for CoCa: the decoder's logits and labels for
    the first n_caption rows (the pair stream)."""
    image: torch.Tensor
    text: torch.Tensor
    logit_scale: torch.Tensor
    logit_bias: Optional[torch.Tensor] = None
    caption_logits: Optional[torch.Tensor] = None
    caption_labels: Optional[torch.Tensor] = None
    pad_id: int = 0
    family: str = CLIP


def _coca_forward(self, image=None, text=None, caption_rows: Optional[int] = None):
    """CoCa's forward when images and captions differ in number (candidate sets carry
    text-only captions): both encoders on every row, the decoder on the first caption_rows
    (image i with caption i). Without caption_rows it is open_clip's CoCa.forward."""
    import open_clip
    if caption_rows is None:
        return open_clip.CoCa.forward(self, image, text)
    image_latent, image_embs = self._encode_image(image)
    text_latent, token_embs = self._encode_text(text)
    # open_clip's teacher forcing: predict token t+1 from tokens <= t
    labels = text[:caption_rows, 1:]
    logits = self.text_decoder(image_embs[:caption_rows], token_embs[:caption_rows, :-1])
    return {"image_features": image_latent, "text_features": text_latent, "logits": logits,
            "labels": labels, "logit_scale": self.logit_scale.exp()}


def _ensure_coca_forward(m):
    # an instance attribute, so DDP / DeepSpeed (which call module.forward with our kwargs) run it
    if getattr(m.forward, "__func__", None) is not _coca_forward:
        m.forward = types.MethodType(_coca_forward, m)


def encode(model, images, tokens, n_caption: int) -> Encoded:
    """One forward per tower (through the wrapper, so DDP's hooks run). Test doubles and the
    accumulation's cached-features stand-in are not open_clip modules: they follow CLIP's
    call interface (3 outputs), which is checked."""
    m = unwrap(model)
    family = _open_clip_family(m)
    if family is None:
        out = model(image=images, text=tokens)
        wrapped = _open_clip_family(unwrap(getattr(model, "model", model)))
        if wrapped not in (None, CLIP):
            raise ValueError(f"optim.accum_steps > 1 (feature-cached accumulation) supports the clip family "
                             f"only; this is a {wrapped} model: set optim.accum_steps=1")
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise UnknownFamily(f"{type(m).__name__} is not an open_clip model and does not return CLIP's "
                                f"(image_features, text_features, logit_scale)")
        return Encoded(*out)
    family = detect(m)
    if family == COCA:
        _ensure_coca_forward(m)
        out = model(image=images, text=tokens, caption_rows=n_caption)
        return Encoded(out["image_features"], out["text_features"], out["logit_scale"],
                       caption_logits=out["logits"], caption_labels=out["labels"], pad_id=m.pad_id,
                       family=COCA)
    out = model(image=images, text=tokens)
    if family == SIGLIP:
        return Encoded(*out[:4], family=SIGLIP)
    return Encoded(*out[:3])
