"""Hugging Face transformers models as dual encoders: CLIP (CLIPModel), SigLIP (SiglipModel,
SigLIP 2's SiglipModel checkpoints too), BLIP's image-text contrastive (ITC) head
(BlipForImageTextRetrieval: the projected [CLS] features, as its use_itm_head=False score) and
FLAVA's contrastive embeddings (FlavaModel: image_projection / text_projection of the unimodal
encoders' first token, as FLAVA's contrastive loss).
The family is read from the checkpoint's config (model_type).

Texts become fixed-length id tensors (padding to the text tower's length, as SigLIP was
trained and as CLIP's processor pads), so the evaluators' token-level de-duplication applies
unchanged. CLIP and SigLIP pool a fixed position (CLIP: the first end-of-text token behind a
causal mask; SigLIP: the last position), so padding does not change a caption's feature; BLIP's
and FLAVA's BERT-style text encoders get the attention mask of their non-pad ids.
Loading follows transformers' own rules: a local directory, or a hub id from the cache (set
HF_HUB_OFFLINE=1 to forbid downloads). Only safetensors or weights_only loads are used by
transformers >= 4.x for .bin files."""
import torch

FAMILIES = ("clip", "siglip", "siglip2", "blip", "flava")
MASKED = ("blip", "flava")  # BERT-style text encoders: padding needs an attention mask


def _features(out):
    """transformers 4 returns the projected features; 5 returns an output whose pooler_output is them."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class HFDualEncoder(torch.nn.Module):
    def __init__(self, model, family, pad_id):
        super().__init__()
        self.model, self.family, self.pad_id = model, family, pad_id

    def encode_image(self, pixels, normalize=True):
        if self.family == "blip":
            x = self.model.vision_proj(self.model.vision_model(pixel_values=pixels)[0][:, 0, :])
        elif self.family == "flava":
            x = self.model.image_projection(self.model.image_model(pixel_values=pixels)[0][:, 0, :])
        else:
            x = _features(self.model.get_image_features(pixel_values=pixels))
        return torch.nn.functional.normalize(x, dim=-1) if normalize else x

    def encode_text(self, ids, normalize=True):
        mask = (ids != self.pad_id).long() if self.family in MASKED else None
        if self.family == "blip":
            x = self.model.text_proj(self.model.text_encoder(input_ids=ids, attention_mask=mask)[0][:, 0, :])
        elif self.family == "flava":
            hidden = self.model.text_model(input_ids=ids, attention_mask=mask)[0]
            x = self.model.text_projection(hidden[:, 0, :])
        else:
            x = _features(self.model.get_text_features(input_ids=ids))
        return torch.nn.functional.normalize(x, dim=-1) if normalize else x


class HFBlipMatcher(torch.nn.Module):
    """BLIP's image-text matching (ITM) head, a cross-encoder: the text encoder attends to the
    image's patch embeddings and itm_head gives match / no-match logits; the score is the match
    probability, as BLIP ranks with it. encode_image keeps the patch embeddings, encode_text the
    token ids (as floats, exact below 2**24), so encoding and de-duplication stay as for dual
    encoders; `match` scores explicit pairs (scoring.scores_of)."""

    def __init__(self, model, pad_id):
        super().__init__()
        self.model, self.pad_id = model, pad_id

    def encode_image(self, pixels, normalize=True):
        return self.model.vision_model(pixel_values=pixels)[0]

    def encode_text(self, ids, normalize=True):
        return ids.float()

    def match(self, image_embeds, text_ids):
        ids = text_ids.round().long()
        out = self.model.text_encoder(input_ids=ids, attention_mask=(ids != self.pad_id).long(),
                                      encoder_hidden_states=image_embeds,
                                      encoder_attention_mask=torch.ones(image_embeds.shape[:-1],
                                                                        dtype=torch.long,
                                                                        device=image_embeds.device))[0]
        return self.model.itm_head(out[:, 0, :]).softmax(dim=-1)[:, 1]


def _text_length(config, family):
    text = getattr(config, "text_config", None)
    n = getattr(text, "max_position_embeddings", None)
    if not n:
        raise ValueError(f"{family}: the config gives no text length (text_config.max_position_embeddings)")
    return int(n)


def load_hf(source, head="contrastive"):
    """source: a hub id or a local directory -> (model, preprocess, tokenizer, description).
    head: contrastive (every family) or itm (BLIP's matching head: pair benchmarks only)."""
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer
    config = AutoConfig.from_pretrained(source)
    family = config.model_type
    if family not in FAMILIES:
        raise ValueError(f"hf:{source}: model_type {family!r} is not one of the supported families "
                         f"{FAMILIES}")
    if family == "blip":
        from transformers import BlipForImageTextRetrieval as cls
    elif family == "clip":
        from transformers import CLIPModel as cls
    else:
        from transformers import AutoModel as cls
    model = cls.from_pretrained(source).eval()
    tok = AutoTokenizer.from_pretrained(source)
    images = AutoImageProcessor.from_pretrained(source)
    length = _text_length(config, family)
    if tok.pad_token_id is None:
        raise ValueError(f"hf:{source}: its tokenizer has no pad token")

    def tokenizer(texts):
        return tok(list(texts), padding="max_length", truncation=True, max_length=length,
                   return_tensors="pt")["input_ids"]

    def preprocess(img):
        return images(images=img.convert("RGB"), return_tensors="pt")["pixel_values"][0]

    if head == "itm":
        if family != "blip":
            raise ValueError(f"hf-itm:{source}: an ITM head is BLIP's (model_type blip), this is {family!r}")
        matcher = HFBlipMatcher(model, tok.pad_token_id).eval()
        return matcher, preprocess, tokenizer, f"hf-itm:{source} (blip ITM)"
    if head != "contrastive":
        raise ValueError(f"hf head must be contrastive or itm, got {head!r}")
    return HFDualEncoder(model,
                         family, tok.pad_token_id).eval(), preprocess, tokenizer, f"hf:{source} ({family})"
