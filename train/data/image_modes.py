"""Any decoded PIL image -> 8-bit RGB with the values a viewer shows.

`Image.convert("RGB")` alone is wrong for several modes real files come in:
  I;16*, I   16-bit grey (PNG, TIFF, PGM): Pillow clips each sample to 255, so every pixel
             above 255/65535 of full scale turns white. Scaled here by 255/65535 (x/257, the
             exact 16 -> 8 bit map). Mode I is Pillow's mode for 16-bit PGM and for TIFF
             integer images, so it gets the same 16-bit scale.
  F          32-bit float: Pillow's own convention (the 0..255 scale of mode L) is kept, with
             rounding instead of truncation and NaN as 0.
  alpha      RGBA, LA, PA, La, RGBa and P/L/RGB with a transparent colour: convert() drops
             alpha, showing whatever colour a transparent pixel happens to store (often
             black). Composited on white instead, as img2dataset does when it resizes.
CMYK and the rest go through convert(), whose maps are right for them."""
import numpy as np
from PIL import Image

_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}


def to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img, dtype=np.float64) / 257.0
        return _grey(a)
    if mode == "F":
        return _grey(np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0))
    if mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGB", img.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return img.convert("RGB")


def _grey(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L").convert("RGB")
