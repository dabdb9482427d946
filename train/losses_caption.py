"""CoCa's captioning loss (Yu et al., "CoCa: Contrastive Captioners are Image-Text Foundation
Models", 2022) as a pure function: teacher-forced next-token cross-entropy of the decoder,
padding ignored, as open_clip's CoCaLoss.

Reduction: a sum over this rank's non-padding tokens divided by the count of *this rank's*
tokens; the caller scales by n_local * world / n_global (train/step.py) so that the
rank-averaged gradient is the gradient of the mean over every token of the global batch,
exactly what one process computes on the concatenated batch."""
import torch.nn.functional as F


def caption_token_count(labels, pad_id: int) -> int:
    return int((labels != pad_id).sum())


def caption_loss(logits, labels, pad_id: int):
    """logits [B, L, V], labels [B, L] -> mean cross-entropy over non-padding tokens
    (0, still wired to the logits, when there are none)."""
    n = max(caption_token_count(labels, pad_id), 1)
    return F.cross_entropy(logits.permute(0, 2, 1), labels, ignore_index=pad_id, reduction="sum") / n
