"""Batched, de-duplicated encoding of images and texts. Images are named by a key: a path, or
(path, box) when the benchmark scores a crop (ARO); `load_image` turns a key into a PIL image."""
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
    uniq = list(dict.fromkeys(texts))
    feats = []
    for i in range(0, len(uniq), batch_size):
        feats.append(model.encode_text(tokenizer(uniq[i:i + batch_size]).to(device), normalize=True).float())
    return dict(zip(uniq, torch.cat(feats))) if feats else {}
