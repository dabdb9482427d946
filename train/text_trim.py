"""Run the text tower only as long as the step's longest caption.

open_clip pads every caption to the context length (32 for hnclip-tiny, 77 for ViT-B/32)
while real captions are often 10-20 tokens. For open_clip's CLIP with a causal text
transformer and EOT ('argmax') pooling, the features of a caption depend only on the
positions up to its EOT token: the causal mask keeps later positions out, and pooling reads
the EOT position. Cutting every caption of a step after the step's longest EOT therefore
gives the same features and the same gradients (the cut positions would get zero gradient)
for a fraction of the text tower's cost. Models this does not hold for are left alone.

`enable(model)` teaches the model to accept any length up to its context; `trim_batches`
cuts a step's token tensors on the host, before they reach the device (no device sync). The
loader, which tokenized the captions, records each batch's needed length as `text_len`, so
the training process reads no tensor at all."""
import types

import torch
import torch.nn.functional as F


def enable(model) -> bool:
    """Patch model.encode_text to accept token tensors shorter than the context length.
    Returns whether the model qualifies (then trim_batches may be used for it)."""
    import open_clip
    from open_clip.transformer import text_global_pool
    ok = (type(model) is open_clip.CLIP and getattr(model, "text_pool_type", None) == "argmax"
          and getattr(model, "attn_mask", None) is not None)
    if not ok:
        return False

    def encode_text(self, text, normalize: bool = False):
        # open_clip 3.3's CLIP.encode_text, with the positional embedding and the causal mask
        # cut to the input's length
        n = text.shape[1]
        cast_dtype = self.transformer.get_cast_dtype()
        x = self.token_embedding(text).to(cast_dtype)
        x = x + self.positional_embedding[:n].to(cast_dtype)
        x = self.transformer(x, attn_mask=self.attn_mask[:n, :n])
        x = self.ln_final(x)
        x = text_global_pool(x, text, self.text_pool_type, eos_token_id=getattr(self, "text_eos_id", None))
        if self.text_projection is not None:
            x = self.text_projection(x) if isinstance(self.text_projection, torch.nn.Linear) else x @ self.text_projection
        return F.normalize(x, dim=-1) if normalize else x

    model.encode_text = types.MethodType(encode_text, model)
    return True


def needed_length(token_tensors) -> int:
    """Positions up to and including the last EOT of any caption (EOT has the highest id)."""
    return max(int(t.argmax(dim=-1).max()) + 1 for t in token_tensors if t.numel())


def text_len_of(tokens):
    """For the loader: the needed length of one batch's token tensor (None if the tokenizer
    gave something else), recorded as `text_len` so the training process reads no tensor."""
    if isinstance(tokens, torch.Tensor) and tokens.ndim == 2 and tokens.numel():
        return needed_length([tokens])
    return None


def trim_batches(batches):
    """Cut the tokens of every micro-batch of a step (pairs and sets) to one common length,
    so they can still be concatenated. Uses the loader's `text_len` where given; else reads
    the host tensors (int() on them syncs nothing)."""
    parts = [b[k] for b in batches for k in ("pairs", "sets") if k in b]
    n = max(p["text_len"] if p.get("text_len") is not None else needed_length([p["tokens"]]) for p in parts)
    out = []
    for b in batches:
        b = dict(b)
        for k in ("pairs", "sets"):
            if k in b:
                b[k] = dict(b[k], tokens=b[k]["tokens"][:, :n])
        out.append(b)
    return out
