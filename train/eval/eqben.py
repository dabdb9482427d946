"""EqBen (Wang et al., "Equivariant Similarity for Vision-Language Foundation Models", 2023):
pairs of images with a minimal visual change and their two captions, scored as Winoground
(text / image / group, paired.py), overall and per source (eqbenag, eqbenyoucook2, eqbengebc,
eqbenkubric_*, eqbensd: the first folder of image0, or the file's name), as the benchmark's own
cal_wino_score.

Reads the annotation files as released, any of their three shapes:
  a list of {"image0", "caption0", "image1", "caption1"}   (the 10% subset, Kubric, SD)
  {video: [{image0, caption0, image1, caption1}]}           (YouCook2, GEBC)
  {video: {subject: [{image0, caption0: [..], ...}]}}       (AG: the first caption of each list)
Image paths are relative to IMAGE_ROOT; YouCook2 frames are .npy arrays in BGR order (the
benchmark's own loader flips them to RGB, as ours does)."""
from pathlib import Path

import numpy as np
from PIL import Image

from .encode import load_image
from .paired import Pair
from .paired_evaluator import PairedEvaluator
from .pairwise import read_json

KEYS = ("image0", "caption0", "image1", "caption1")


def _frames(data, where):
    if isinstance(data, list):
        yield from ((f"{where} item {n}", rec) for n, rec in enumerate(data))
    elif isinstance(data, dict):
        for video, v in data.items():
            if isinstance(v, list):
                yield from ((f"{where} [{video}][{n}]", rec) for n, rec in enumerate(v))
            elif isinstance(v, dict):
                for subject, frames in v.items():
                    yield from ((f"{where} [{video}][{subject}][{n}]", rec) for n, rec in enumerate(frames))
            else:
                raise ValueError(f"{where} [{video}]: expected a list or a dict of frames")
    else:
        raise ValueError(f"EqBen: {where} must be a JSON list or object")


def load_eqben(ann, image_root, path_of=None):
    path_of = path_of or (lambda r, rel, where: str(Path(r) / rel))
    data = read_json(ann, "EqBen")
    out = []
    for where, rec in _frames(data, str(ann)):
        if not isinstance(rec, dict) or any(k not in rec for k in KEYS):
            raise ValueError(f"EqBen: {where}: expected {list(KEYS)}")
        caps = [rec[k][0] if isinstance(rec[k], list) else rec[k] for k in ("caption0", "caption1")]
        first = Path(rec["image0"]).parts
        group = first[0] if len(first) > 1 else Path(ann).stem
        out.append(Pair([path_of(image_root, rec[k], where) for k in ("image0", "image1")], caps, group))
    return out


def load_frame(key):
    if str(key).endswith(".npy"):
        arr = np.load(key, allow_pickle=False)  # a plain array, never pickled objects
        return Image.fromarray(arr[:, :, ::-1].astype(np.uint8), "RGB")
    return load_image(key)


class EqBenEvaluator(PairedEvaluator):
    type_name = benchmark = "eqben"
    load_image = staticmethod(load_frame)

    def __init__(self, ann, image_root, **common):
        super().__init__(**common)
        self.items = load_eqben(ann, image_root, self.path)[:self.limit]
