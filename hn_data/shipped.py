"""Labels re-measured on the images as they ship: encoded, written and decoded.

The masks say what the lossless composite shows; what a model and a benchmark see is a
file. Lossy encoding can blur a 1-pixel gap between two counted objects into one blob, or
eat a thin part of a shape, so a label true of the masks can be false of the file. Here each
member is encoded in every format the engine writes (PNG training shards, the SPEC-layout
JPEG held-out benchmark: one check for both, so train and held-out sets are drawn from the
same distribution), decoded again, its objects are found again from the pixels alone, and
the concept's rule (hn_data.rules.measure) is applied to them.

Finding the objects: a pixel is an object pixel when some channel differs from the empty
scene (the member without its objects) by more than FOREGROUND_MIN_DIFF; it belongs to the
object whose mask is nearest. Ringing that bridges two instances therefore joins them, and
an object part that fades into the background after decoding is lost: either changes the
measurement, and the set is rejected."""
import io

import numpy as np
from PIL import Image

from .rules import measure
from .set_format import png_bytes
from .spec_layout import spec_jpeg_bytes

# Object colours differ from the (grey-ish) procedural backgrounds by >= 42 levels in some
# channel; 4:4:4 JPEG at quality 95 moves background pixels next to an edge by <= 24
# (measured on 60 sets of every subset, 64 px). Half the smallest contrast sits between.
FOREGROUND_MIN_DIFF = 24

ENCODERS = {"png": png_bytes, "jpeg": spec_jpeg_bytes}


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


def nearest_object(placed, shape) -> np.ndarray:
    """HxW: 1 + the index of the object whose visible mask is nearest each pixel (0: none)."""
    from scipy import ndimage
    labels = np.zeros(shape, np.int32)
    for i, (_, mask, _) in enumerate(placed):
        labels[mask] = i + 1
    if not labels.any():
        return labels
    idx = ndimage.distance_transform_edt(labels == 0, return_distances=False, return_indices=True)
    return labels[idx[0], idx[1]]


def objects_from_pixels(pixels: np.ndarray, empty: np.ndarray, placed, nearest=None):
    """placed: [(name, visible mask, cut area)] -> the same objects with masks found from
    `pixels` (see the module docstring)."""
    if nearest is None:
        nearest = nearest_object(placed, pixels.shape[:2])
    fg = np.abs(pixels - empty).max(axis=2) > FOREGROUND_MIN_DIFF
    return [{"name": name, "mask": fg & (nearest == i + 1), "cut_area": cut_area}
            for i, (name, _, cut_area) in enumerate(placed)]


def check_member(subset, image, empty, placed, names, label):
    """-> (the first shipped format whose decoded image does not measure `label`, or None;
    {format: the encoded bytes}, so the writer stores exactly what was checked).
    image: the finished member (PIL RGB); empty: HxWx3, the member without its objects."""
    empty = np.asarray(empty).astype(np.int16)
    nearest = nearest_object(placed, empty.shape[:2])
    files = {}
    for fmt, encode in ENCODERS.items():
        files[fmt] = encode(image)
        found = objects_from_pixels(decoded(files[fmt]), empty, placed, nearest)
        if measure(subset, found, names, image.size) != label:
            return fmt, files
    return None, files
