"""Procedural backgrounds: a smooth two-colour gradient plus low-amplitude noise, fully
determined by a seed, so every member of a candidate set can share one background."""
import numpy as np
from PIL import Image


def background(size: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(60, 200, 3), rng.integers(60, 200, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / (np.ptp(t) + 1e-9)
    img = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    img += rng.normal(0, 6, img.shape)
    # keep backgrounds grey-ish so objects' saturated colours stay recognisable
    grey = img.mean(axis=2, keepdims=True)
    img = 0.5 * img + 0.5 * grey
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
