"""COLA multi-object matching (Ray et al., "COLA: A Benchmark for Compositional Text-to-image
Retrieval", 2023): data/COLA_multiobjects_matching_benchmark.json as released, a list of
[image 1 URL, caption 1, image 2 URL, caption 2] whose captions swap the two images' attributes
and objects. Download the images into IMAGE_ROOT under their URL's file name (the benchmark's
own loaders do the same). A pair is right when each caption picks its own image:
s(i1, c1) > s(i2, c1) and s(i2, c2) > s(i1, c2), as its ColaMultiObjAcc (paired.py's image
score, under the tie rule); `acc` is the share of pairs."""
from pathlib import PurePosixPath

from .paired import Pair
from .paired_evaluator import PairedEvaluator
from .pairwise import read_json


def load_cola(ann, image_root, path_of):
    data = read_json(ann, "COLA")
    if not isinstance(data, list):
        raise ValueError(f"COLA: {ann} must be a JSON list of [image URL, caption, image URL, caption]")
    out = []
    for n, rec in enumerate(data):
        where = f"COLA: {ann} item {n}"
        if not (isinstance(rec, list) and len(rec) == 4 and all(isinstance(x, str) for x in rec)):
            raise ValueError(f"{where}: expected [image URL, caption, image URL, caption]")
        names = [PurePosixPath(rec[k].split("?")[0]).name for k in (0, 2)]
        out.append(Pair([path_of(image_root, nm, where) for nm in names], [rec[1], rec[3]], "multi_objects"))
    return out


class ColaEvaluator(PairedEvaluator):
    type_name = benchmark = "cola"
    counted_as = "pairs"

    def __init__(self, ann, image_root, **common):
        super().__init__(**common)
        self.items = load_cola(ann, image_root, self.path)[:self.limit]

    def figures(self, scores):
        return {"acc": scores["image"]}
