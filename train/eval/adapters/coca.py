"""CoCa's captioning score (Yu et al., "CoCa: Contrastive Captioners are Image-Text Foundation
Models", 2022) for open_clip CoCa models: s(image, caption) = the mean log-probability of the
caption's tokens under CoCa's text decoder, the caption teacher-forced given the image's
attentional-pooler tokens; that is minus CoCa's captioning loss for this one pair (open_clip's
CoCaLoss: cross-entropy over the caption's next tokens, padding (id 0) ignored, the end-of-text
token counted). A cross-encoder: it scores pairs (scoring.scores_of calls `match`), so gallery
benchmarks (retrieval, zero-shot) refuse it; run those with the contrastive towers (plain
`--model NAME`). encode_image keeps the image tokens, encode_text the token ids (as floats, exact
below 2**24), so encoding and token-level de-duplication stay as for dual encoders."""
import torch

PAD_ID = 0  # open_clip's tokenizer pads with 0, and CoCaLoss ignores it


class CocaCaptionScorer(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        if not (hasattr(model, "text_decoder") and hasattr(model, "_encode_image")):
            raise ValueError(f"coca-caption: {type(model).__name__} is not an open_clip CoCa model "
                             "(no text decoder)")
        self.model = model

    def encode_image(self, pixels, normalize=True):
        _, image_tokens = self.model._encode_image(pixels)
        return image_tokens

    def encode_text(self, ids, normalize=True):
        return ids.float()

    def match(self, image_tokens, text_ids):
        ids = text_ids.round().long()
        _, token_embs = self.model._encode_text(ids)
        # as CoCa.forward: the decoder sees tokens 0..L-2 and predicts tokens 1..L-1
        logits = self.model.text_decoder(image_tokens, token_embs[:, :-1])
        labels = ids[:, 1:]
        logp = logits.float().log_softmax(dim=-1).gather(-1, labels[..., None])[..., 0]
        keep = (labels != PAD_ID).float()
        return (logp * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)


def load_coca_caption(name, pretrained=None):
    """open_clip CoCa `name` (+ `pretrained`) -> (scorer, preprocess, tokenizer, description)."""
    from train import models
    model, _, preprocess, tokenizer = models.create(name, pretrained)
    scorer = CocaCaptionScorer(model.eval()).eval()
    return scorer, preprocess, tokenizer, f"coca-caption:{name}:{pretrained or 'random-init'}"
