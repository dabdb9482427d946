"""The class names and templates shipped for ImageNet and ELEVATER's classification sets: their
counts against each dataset's published class count, their sources, and a folder-format dataset
scored with them end to end (toy oracle encoder: 100; reversed: 0)."""
import json

import pytest

from eval_fixtures import write_zeroshot_wds
from eval_toy import ToyEncoder, World
from train.eval import build_one
from train.eval.contract import run_suite
from train.eval.zeroshot_shipped import HERE, canonical, names, shipped

# the number of classes each dataset's own paper / release defines; Caltech-101 counts its 102
# release folders (101 object categories and the background one), as CLIP and CLIP_benchmark do
OFFICIAL_COUNTS = {
    "imagenet1k": 1000, "cifar10": 10, "cifar100": 100, "caltech101": 102, "dtd": 47,
    "eurosat": 10, "fgvc_aircraft": 100, "food101": 101, "flowers": 102, "pets": 37, "cars": 196,
    "gtsrb": 43, "mnist": 10, "resisc45": 45, "country211": 211, "fer2013": 7, "pcam": 2,
    "kitti_closest_vehicle_distance": 4, "renderedsst2": 2, "voc2007": 20, "hateful_memes": 2,
}


def run(ev, enc):
    return run_suite(ev, enc, enc.tokenizer, enc.preprocess)


def test_every_shipped_dataset_has_its_official_class_count():
    assert names() == sorted(OFFICIAL_COUNTS)  # ImageNet and ELEVATER's twenty, nothing else
    for key, count in OFFICIAL_COUNTS.items():
        classes, templates = shipped(key)
        assert len(classes) == count, key
        assert templates and all(t.count("{}") == 1 for t in templates), key


def test_shipped_files_name_their_source_and_licence():
    for path in HERE.glob("*.json"):
        data = json.loads(path.read_text())
        for field in ("classnames_source", "templates_source"):
            assert "MIT License" in data[field], (path.name, field)
            assert "CLIP_benchmark" in data[field] or "openai/CLIP" in data[field], (path.name, field)


def test_shipped_imagenet_is_open_clips_list_and_prompts():
    from open_clip import zero_shot_metadata as z
    classes, templates = shipped("imagenet")
    assert list(classes) == list(z.IMAGENET_CLASSNAMES)
    assert list(templates) == [t("{}") if callable(t) else t for t in z.OPENAI_IMAGENET_TEMPLATES]


def test_names_and_aliases():
    assert canonical("CIFAR-10") == "cifar10" and canonical("oxford-flower-102") == "flowers"
    assert canonical("imagenet") == "imagenet1k" and canonical("no-such-set") is None
    with pytest.raises(KeyError, match="shipped: caltech101"):
        shipped("no-such-set")


def write_folder(world, root, classes, templates, folder_of=lambda k, name: name.replace(" ", "_"),
                 per_class=1):
    """An image folder ROOT/<folder>/k.png whose images the prompts of their class describe."""
    for k, name in enumerate(classes):
        for i in range(per_class):
            path = root / folder_of(k, name) / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            world.image([t.format(name) for t in templates]).save(path)
    return root


def test_suite_scores_a_folder_with_the_shipped_names_and_templates(tmp_path):
    world = World()
    classes, templates = shipped("cifar10")
    root = write_folder(world, tmp_path / "cifar10", classes, templates, per_class=2)
    ev = build_one("elevater", {"type": "zeroshot_suite", "datasets": {"cifar10": {"root": str(root)}}})
    part = ev.parts["cifar10"]
    assert part.names == list(classes) and part.templates == list(templates)
    assert run(ev, ToyEncoder(world)).metrics == {"cifar10/top1": 100.0, "cifar10/mean_per_class": 100.0,
                                                  "cifar10/metric/accuracy": 100.0,
                                                  "avg/top1": 100.0, "avg/metric": 100.0}
    assert run(ev, ToyEncoder(world, "reversed")).metrics["cifar10/top1"] == 0.0
    # the user's own templates win over the shipped ones
    own = build_one("z", {"type": "zeroshot_suite",
                          "datasets": {"cifar10": {"root": str(root), "templates": ["nothing {}"]}}})
    assert own.parts["cifar10"].templates == ["nothing {}"]


def test_folders_that_are_the_names_are_matched_by_name_not_sort_order(tmp_path):
    # EuroSAT's shipped order (annual crop land, forest, brushland ...) is not alphabetical:
    # mapping sorted folders to names by position would swap classes
    world = World()
    classes, templates = shipped("eurosat")
    assert sorted(classes) != list(classes)
    root = write_folder(world, tmp_path / "eurosat", classes, templates)
    ev = build_one("eurosat", {"type": "zeroshot", "root": str(root), "dataset": "eurosat"})
    assert run(ev, ToyEncoder(world)).metrics["top1"] == 100.0


def test_numbered_folders_are_read_in_numeric_order(tmp_path):
    # Flowers-102 as often unpacked: folders 1 ... 102; a string sort would give 1, 10, 100, ...
    world = World()
    classes, templates = shipped("flowers")
    root = write_folder(world, tmp_path / "flowers", classes, templates, folder_of=lambda k, _: str(k + 1))
    ev = build_one("flowers", {"type": "zeroshot_suite", "datasets": {"flowers": {"root": str(root)}}})
    assert run(ev, ToyEncoder(world)).metrics["flowers/top1"] == 100.0


def test_sorted_folders_get_the_shipped_names_in_index_order(tmp_path):
    # ImageNet-style: the folders are ids, not names; sorted id k holds class k
    world = World()
    classes, templates = shipped("cifar10")
    root = write_folder(world, tmp_path / "ids", classes, templates, folder_of=lambda k, _: f"n{k:08d}")
    ev = build_one("cifar10", {"type": "zeroshot", "root": str(root), "dataset": "cifar10"})
    assert run(ev, ToyEncoder(world)).metrics["top1"] == 100.0


def test_webdataset_with_a_shipped_dataset_needs_no_classnames_file(tmp_path):
    world = World()
    classes, templates = shipped("mnist")
    opts = write_zeroshot_wds(world, tmp_path / "mnist", classes=classes, templates=templates)
    ev = build_one("mnist", {"type": "zeroshot", "urls": opts["urls"], "dataset": "mnist"})
    assert ev.names == list(classes) and ev.templates == list(templates)
    assert run(ev, ToyEncoder(world)).metrics["top1"] == 100.0


def test_bad_shipped_options_are_clear_errors(tmp_path):
    world = World()
    classes, templates = shipped("cifar10")
    root = write_folder(world, tmp_path / "c", classes[:9], templates)  # one class folder short
    with pytest.raises(ValueError, match="10 class names for 9 folders"):
        build_one("cifar10", {"type": "zeroshot", "root": str(root), "dataset": "cifar10"})
    # in a suite, `dataset: null` opts out of the shipped names: the folder names are the classes
    opts = {"root": str(root), "dataset": None}
    ev = build_one("z", {"type": "zeroshot_suite", "datasets": {"cifar10": opts}})
    assert ev.parts["cifar10"].names == sorted(classes[:9])  # CIFAR-10's names have no spaces
    with pytest.raises(ValueError, match="no shipped class names"):
        build_one("x", {"type": "zeroshot", "root": str(root), "dataset": "cifar11"})
    with pytest.raises(FileNotFoundError, match="nor is it a shipped dataset"):
        build_one("x", {"type": "zeroshot", "root": str(root), "classnames": "cifar11"})


def test_mean_per_class_weighs_every_class_alike(tmp_path):
    # CLIP's metric on Aircraft, Pets, Caltech-101, Flowers: 3 images of a class the model gets
    # right and 1 of a class it gets wrong give top-1 75 but a per-class mean of 50
    world = World()
    for name, n, prompt in (("cat", 3, "a photo of a cat."), ("dog", 1, "a photo of a cat.")):
        for i in range(n):
            (tmp_path / "zs" / name).mkdir(parents=True, exist_ok=True)
            world.image([prompt]).save(tmp_path / "zs" / name / f"{i}.png")
    ev = build_one("z", {"type": "zeroshot", "root": str(tmp_path / "zs"), "templates": ["a photo of a {}."]})
    assert run(ev, ToyEncoder(world)).metrics == {"top1": 75.0, "mean_per_class": 50.0,
                                                  "metric/accuracy": 75.0}
