"""Class names and prompt templates shipped for ImageNet-1k and ELEVATER's twenty image
classification sets (Li et al., "ELEVATER: A Benchmark and Toolkit for Evaluating
Language-Augmented Visual Models", 2022), one JSON file each under zeroshot_classes/.

Where they come from (each file names its source): CLIP_benchmark's
`clip_benchmark/datasets/en_classnames.json` and `en_zeroshot_classification_templates.json`
(MIT License, Copyright (c) 2022 Mehdi Cherti); for the sets whose names CLIP_benchmark takes
from torchvision instead of that file (CIFAR-10/100, DTD, FGVC Aircraft, Food-101, Stanford
Cars, RESISC-45, VOC 2007, Rendered SST-2, Hateful Memes), the class lists of OpenAI CLIP's
`data/prompts.md` (MIT License, Copyright (c) 2021 OpenAI), which CLIP_benchmark's templates
were taken from. Templates are written with '{}' (CLIP_benchmark writes '{c}').

Names are in the class-index order of the release as torchvision and CLIP_benchmark number the
classes: index k of a webdataset's `.cls` is `classnames[k]`; for an image folder see
zeroshot.load_folder (by name where the folders are the names, else sorted folder order)."""
import json
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent / "zeroshot_classes"

# other spellings users (and ELEVATER's own dataset names) give the same sets
ALIASES = {
    "imagenet": "imagenet1k", "imagenet-1k": "imagenet1k",
    "cifar-10": "cifar10", "cifar-100": "cifar100", "caltech-101": "caltech101",
    "describable-textures": "dtd", "fgvc-aircraft": "fgvc_aircraft", "food-101": "food101",
    "oxford-flower-102": "flowers", "flowers102": "flowers", "oxford-iiit-pets": "pets",
    "stanford-cars": "cars", "resisc-45": "resisc45", "country-211": "country211",
    "fer-2013": "fer2013", "patch-camelyon": "pcam", "kitti-distance": "kitti_closest_vehicle_distance",
    "rendered-sst2": "renderedsst2", "voc-2007-classification": "voc2007",
    "voc2007_classification": "voc2007",
    "hateful-memes": "hateful_memes",
}


def names():
    """Every shipped dataset name (file stems), sorted."""
    return sorted(p.stem for p in HERE.glob("*.json"))


def canonical(name):
    """The shipped file stem for `name` (case-insensitive, ELEVATER spellings accepted), or None."""
    if not isinstance(name, str):
        return None
    key = ALIASES.get(name.lower(), name.lower())
    return key if (HERE / f"{key}.json").is_file() else None


@lru_cache(maxsize=None)
def _load(key):
    path = HERE / f"{key}.json"
    data = json.loads(path.read_text())
    names_, templates = data.get("classnames"), data.get("templates")
    if not names_ or not all(isinstance(n, str) and n for n in names_):
        raise ValueError(f"{path}: `classnames` must be a non-empty list of strings")
    if not templates or any(not isinstance(t, str) or "{}" not in t for t in templates):
        raise ValueError(f"{path}: every template must be a string containing '{{}}'")
    return tuple(names_), tuple(templates)


def shipped(name):
    """(class names, templates) shipped for dataset `name`; KeyError naming the known ones."""
    key = canonical(name)
    if key is None:
        raise KeyError(f"no shipped class names for {name!r}; shipped: {', '.join(names())}")
    return _load(key)
