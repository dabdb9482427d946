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
the training process reads no tensor at all.

On LAION-length captions one long caption makes the whole step run at (nearly) the full
context. `chunked(plan_for(batch))` goes further: the step's captions are sorted by length
and encoded in up to three runs, each cut to its own longest caption (`plan_chunks` picks the
cuts that minimise the tokens encoded), then put back in order. Per caption the computation
is the one above, so features and gradients are the same; the plan is made on the host from
the loader's per-caption lengths (`text_lens`), so nothing waits for the device."""
import types
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def enable(model) -> bool:
    """Patch model.encode_text to accept token tensors shorter than the context length.
    Returns whether the model qualifies (then trim_batches may be used for it)."""
    import open_clip
    ok = (type(model) is open_clip.CLIP and getattr(model, "text_pool_type", None) == "argmax"
          and getattr(model, "attn_mask", None) is not None)
    if not ok:
        return False

    def encode_text(self, text, normalize: bool = False):
        plan = _PLAN.get()
        if plan is not None and plan.n == text.shape[0] and max(plan.lengths) <= text.shape[1]:
            return _encode_chunked(self, text, normalize, plan)
        return _encode_cut(self, text, normalize)

    model.encode_text = types.MethodType(encode_text, model)
    return True


def _encode_cut(self, text, normalize: bool = False):
    # open_clip 3.3's CLIP.encode_text, with the positional embedding and the causal mask
    # cut to the input's length
    return _encode_embedded(self, self.token_embedding(text), text, normalize)


def _encode_embedded(self, x, text, normalize: bool = False):
    """encode_text from the token embeddings x of `text` on: x and text cut to one length."""
    from open_clip.transformer import text_global_pool
    n = text.shape[1]
    cast_dtype = self.transformer.get_cast_dtype()
    x = x.to(cast_dtype) + self.positional_embedding[:n].to(cast_dtype)
    x = self.transformer(x, attn_mask=self.attn_mask[:n, :n])
    x = self.ln_final(x)
    x = text_global_pool(x, text, self.text_pool_type, eos_token_id=getattr(self, "text_eos_id", None))
    if self.text_projection is not None:
        proj = self.text_projection
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return F.normalize(x, dim=-1) if normalize else x


@dataclass
class ChunkPlan:
    """Encode rows `order` (host tensor, rows sorted by needed length) in runs of `sizes` rows,
    run i cut to `lengths[i]` tokens; n = rows of the token tensor this plan is for."""
    order: torch.Tensor
    sizes: list
    lengths: list
    n: int


_PLAN = ContextVar("hnclip_text_chunk_plan", default=None)


@contextmanager
def chunked(plan):
    """Within this block a model enabled above encodes a text batch of plan.n rows by `plan`
    (None: as before)."""
    token = _PLAN.set(plan)
    try:
        yield
    finally:
        _PLAN.reset(token)


def _encode_chunked(self, text, normalize, plan):
    order = plan.order.to(text.device, non_blocking=True)
    text = text[order][:, :max(plan.lengths)]
    # one embedding lookup for all runs: its backward writes the token table's (dense,
    # vocabulary-sized) gradient once per step, not once per run
    emb = self.token_embedding(text)
    feats, start = [], 0
    for size, n in zip(plan.sizes, plan.lengths):
        rows = slice(start, start + size)
        feats.append(_encode_embedded(self, emb[rows, :n], text[rows, :n], normalize))
        start += size
    feats = torch.cat(feats)
    # back to the input's row order: row order[i] of the output is feats[i]
    return torch.empty_like(feats).index_copy(0, order, feats)


def plan_chunks(lengths, max_chunks: int = 3, min_saving: float = 0.1):
    """The sorted-by-length cut of `lengths` (tokens each caption needs) into at most
    max_chunks runs that encodes the fewest tokens; None when it saves under min_saving of
    one run at the longest length (then the plain cut is as good and launches less)."""
    n = len(lengths)
    if n < 2 or max_chunks < 2:
        return None
    order = sorted(range(n), key=lambda i: lengths[i])
    values = sorted(set(lengths))
    below = [sum(1 for x in lengths if x <= v) for v in values]  # captions up to each length
    # best[k][j]: fewest tokens for the captions up to values[j] in k+1 runs, and its cuts
    best = [[(below[j] * values[j], [j]) for j in range(len(values))]]
    for _ in range(1, max_chunks):
        prev, row = best[-1], []
        for j in range(len(values)):
            cands = [(prev[i][0] + (below[j] - below[i]) * values[j], prev[i][1] + [j]) for i in range(j)]
            row.append(min(cands + [best[0][j]], key=lambda c: c[0]))
        best.append(row)
    cost, cuts = min((r[-1] for r in best), key=lambda c: c[0])
    if cost > (1 - min_saving) * n * values[-1]:
        return None
    sizes = [below[j] - (below[i] if i is not None else 0) for i, j in zip([None] + cuts[:-1], cuts)]
    return ChunkPlan(torch.tensor(order), sizes, [values[j] for j in cuts], n)


def plan_for(batch):
    """The chunk plan of one step's captions in forward_losses' order (pairs, then set
    captions), from the loader's per-caption lengths; None if a part has none."""
    parts = [batch[k] for k in ("pairs", "sets") if k in batch]
    if not all(p.get("text_lens") is not None for p in parts):
        return None
    return plan_chunks([x for p in parts for x in p["text_lens"]])


def needed_length(token_tensors) -> int:
    """Positions up to and including the last EOT of any caption (EOT has the highest id)."""
    return max(int(t.argmax(dim=-1).max()) + 1 for t in token_tensors if t.numel())


def caption_lengths(tokens):
    """For the loader: the tokens each caption of a batch needs, as a list (None if the
    tokenizer gave something other than a 2-D tensor)."""
    if isinstance(tokens, torch.Tensor) and tokens.ndim == 2 and tokens.numel():
        return (tokens.argmax(dim=-1) + 1).tolist()
    return None


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
