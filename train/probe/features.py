"""Features of an open_clip model's image tower at any layer, and its text embeddings.

Layers are named as the per-layer curves show them: 1..N is the residual stream after
`model.visual.transformer.resblocks[k-1]` (read with a forward hook), `final` is the image
embedding CLIP compares with text (`encode_image`, before normalisation). An intermediate
layer's token sequence is pooled as the paper does with the Q-Former's query tokens
(`flatten`, the default), or reduced to the class token (`cls`) or the token mean (`mean`)."""
from contextlib import contextmanager

import torch
from PIL import Image

from .. import models


def load_backbone(name: str, pretrained=None, seed: int = 0):
    """(model, preprocess, tokenizer). `name` is any open_clip name (ours included) or
    `local-dir:<export dir>`; `pretrained` a tag or a weights file. Random init (no
    pretrained) is seeded exactly as the trainer seeds it, so `hnclip-tiny` with seed 0 is the
    default run's starting point."""
    torch.manual_seed(seed)
    model, _, preprocess, tokenizer = models.create(name, pretrained)
    model.eval()
    return model, preprocess, tokenizer


def n_layers(model) -> int:
    tr = getattr(model.visual, "transformer", None)
    return len(tr.resblocks) if tr is not None and hasattr(tr, "resblocks") else 0


def parse_layers(spec, model):
    """'final' | 'all' (1..N then final) | an int | a list of those -> list of layer names."""
    n = n_layers(model)
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    out = []
    for it in items:
        if it == "all":
            out += list(range(1, n + 1)) + ["final"]
        elif it == "final":
            out.append("final")
        else:
            k = int(it)
            k = n + 1 + k if k < 0 else k  # -1 is the last block
            if not 1 <= k <= n:
                raise ValueError(f"layer {it}: the image tower has resblocks 1..{n}"
                                 + ("" if n else " (not a ViT: only 'final' is available)"))
            out.append(k)
    return list(dict.fromkeys(out))


class _Enough(Exception):
    """Raised by the hook of the deepest requested layer: later blocks need not run."""


@contextmanager
def tap(model, layers, stop=False):
    """Collect the residual stream after the given 1-based resblocks into a dict."""
    tr = model.visual.transformer
    got, handles = {}, []
    deepest = max(layers) if layers else None

    def hook_for(k):
        def hook(_module, _inputs, output):
            x = output[0] if isinstance(output, tuple) else output
            got[k] = x if getattr(tr, "batch_first", True) else x.transpose(0, 1)
            if stop and k == deepest:
                raise _Enough
        return hook

    for k in layers:
        handles.append(tr.resblocks[k - 1].register_forward_hook(hook_for(k)))
    try:
        yield got
    finally:
        for h in handles:
            h.remove()


def pool(tokens, how: str):
    if how == "flatten":
        return tokens.flatten(1)
    if how == "cls":
        return tokens[:, 0]
    if how == "mean":
        return tokens.mean(1)
    raise ValueError(f"pooling '{how}': use flatten | cls | mean")


def image_features(model, pixels, layers, pooling="flatten"):
    """{layer: [B, D]} for the requested layers in one forward pass (differentiable)."""
    blocks = [k for k in layers if k != "final"]
    out = {}
    if "final" in layers:
        with tap(model, blocks) as got:
            out["final"] = model.encode_image(pixels)
    elif blocks:
        with tap(model, blocks, stop=True) as got:
            try:
                model.visual(pixels)
            except _Enough:
                pass
    for k in blocks:
        out[k] = pool(got[k], pooling)
    return out


def load_pixels(paths, preprocess):
    return torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])


@torch.no_grad()
def extract(model, preprocess, paths, layers, pooling="flatten", batch_size=128):
    """Frozen features of each unique image: ({layer: [U, D]}, {path: row})."""
    uniq = list(dict.fromkeys(paths))
    parts = {k: [] for k in layers}
    for i in range(0, len(uniq), batch_size):
        feats = image_features(model, load_pixels(uniq[i:i + batch_size], preprocess), layers, pooling)
        for k in layers:
            parts[k].append(feats[k].float())
    return {k: torch.cat(v) for k, v in parts.items()}, {p: i for i, p in enumerate(uniq)}


@torch.no_grad()
def encode_texts(model, tokenizer, texts, batch_size=256):
    """Text-tower embeddings of each unique text: ([V, D], {text: row})."""
    uniq = list(dict.fromkeys(texts))
    out = [model.encode_text(tokenizer(uniq[i:i + batch_size]), normalize=True).float()
           for i in range(0, len(uniq), batch_size)]
    return torch.cat(out), {t: i for i, t in enumerate(uniq)}
