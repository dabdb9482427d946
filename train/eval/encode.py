"""Batched, de-duplicated encoding of images (by path) and texts."""
import torch
from PIL import Image


@torch.no_grad()
def encode_images(model, preprocess, paths, batch_size=128, device="cpu"):
    uniq = list(dict.fromkeys(paths))
    feats = []
    for i in range(0, len(uniq), batch_size):
        batch = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in uniq[i:i + batch_size]])
        feats.append(model.encode_image(batch.to(device), normalize=True).float())
    table = dict(zip(uniq, torch.cat(feats))) if feats else {}
    return table


@torch.no_grad()
def encode_texts(model, tokenizer, texts, batch_size=256, device="cpu"):
    uniq = list(dict.fromkeys(texts))
    feats = []
    for i in range(0, len(uniq), batch_size):
        feats.append(model.encode_text(tokenizer(uniq[i:i + batch_size]).to(device), normalize=True).float())
    return dict(zip(uniq, torch.cat(feats))) if feats else {}
