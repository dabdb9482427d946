"""Batched, de-duplicated encoding of images and texts. Images are named by a key: a path, or
(path, box) when the benchmark scores a crop (ARO); `load_image` turns a key into a PIL image.

Texts are de-duplicated by their token ids, not their strings: two captions that differ only
past the context length are the same input to the model, and must get the very same embedding.
Encoding them apart (in different batches, at different positions) gives embeddings a few 1e-8
apart, and a strict comparison then decides the "tie" by float noise."""
import torch
from PIL import Image


def load_image(key):
    path, box = (key, None) if isinstance(key, str) else key
    img = Image.open(path).convert("RGB")
    if box is not None:
        # box = (x, y, w, h) as ARO writes it; PIL wants (left, top, right, bottom)
        x, y, w, h = box
        img = img.crop((x, y, x + w, y + h))
    return img


@torch.no_grad()
def encode_images(model, preprocess, keys, batch_size=128, device="cpu", load=load_image):
    """-> {key: L2-normalised float32 feature}. `load(key)` -> PIL image (or an already
    decoded PIL image passed through) lets shard readers hand over images they hold in memory."""
    uniq = list(dict.fromkeys(keys))
    feats = []
    for i in range(0, len(uniq), batch_size):
        batch = torch.stack([preprocess(load(k)) for k in uniq[i:i + batch_size]])
        feats.append(model.encode_image(batch.to(device), normalize=True).float())
    return dict(zip(uniq, torch.cat(feats))) if feats else {}


@torch.no_grad()
def encode_texts(model, tokenizer, texts, batch_size=256, device="cpu"):
    """-> {text: L2-normalised float32 feature}; texts with equal token ids share one feature."""
    uniq = list(dict.fromkeys(texts))
    if not uniq:
        return {}
    tokens = [tokenizer(uniq[i:i + batch_size]) for i in range(0, len(uniq), batch_size)]
    if not all(isinstance(t, torch.Tensor) for t in tokens):
        # a tokenizer that returns more than ids (attention masks): strings are the key
        feats = [model.encode_text(t.to(device) if hasattr(t, "to") else t, normalize=True).float()
                 for t in tokens]
        return dict(zip(uniq, torch.cat(feats)))
    tokens = torch.cat(tokens)
    rows, row_of, first = {}, [], []
    for n, r in enumerate(tokens.tolist()):
        k = rows.setdefault(tuple(r), len(rows))
        if k == len(first):
            first.append(n)
        row_of.append(k)
    distinct = tokens[first]
    feats = torch.cat([model.encode_text(distinct[i:i + batch_size].to(device), normalize=True).float()
                       for i in range(0, len(distinct), batch_size)])
    return {t: feats[k] for t, k in zip(uniq, row_of)}
