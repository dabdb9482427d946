"""COLA's single-object setting on a fixture in its released format (the class captions and
[image_file, objects_attributes_annotation, label, hard_list] rows, in both the README's dict
shape and eval.py's list shape): mean AP over the hard images of each class, against a
brute-force AP (the mean over positives of the precision at their score), on the toy oracle and
on a tiny random open_clip model; skipped classes and missing images are counted."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from eval_toy import ToyEncoder, World
from train.eval import build_one
from train.eval.cola_single import average_precision
from train.eval.contract import run_suite

CLASSES = ["square white plate", "red wooden table", "blue metal car", "green leafy tree", "black cat"]
# per image: the classes it shows (label 1) and its hard classes (hard_list 1)
IMAGES = [({0}, {0, 1}), ({1}, {0, 1, 2}), ({0, 2}, {0, 2}), ({2}, {1, 2}), (set(), {0, 1, 2}),
          ({3}, {2})]  # class 3 is shown but never hard; class 4 is never shown


def brute_ap(scores, labels):
    pos = [s for s, lab in zip(scores, labels) if lab]
    return float(np.mean([sum(1 for t, lab in zip(scores, labels) if lab and t >= s) /
                          sum(1 for t in scores if t >= s) for s in pos]))


def write_cola_single(world, root, shape="dict", missing=1):
    """The release's JSON (authors' absolute image paths) and the images under root/VG_100K;
    `missing` more rows whose image is not downloaded."""
    folder = root / "VG_100K"
    folder.mkdir(parents=True, exist_ok=True)
    rows, n_classes = [], len(CLASSES)
    for n, (shown, hard) in enumerate(IMAGES + [({0}, {0})] * missing):
        fname = f"{2414600 + n}.jpg"
        if n < len(IMAGES):
            world.image([CLASSES[k] for k in sorted(shown)] or ["nothing of note"]).save(folder / fname)
        rows.append([f"/data/visual_genome/{fname}", {"plate": ["white", "square"]},
                     [int(k in shown) for k in range(n_classes)], [int(k in hard) for k in range(n_classes)]])
    data = {"labels": CLASSES, "data": rows} if shape == "dict" else [CLASSES, rows]
    ann = root / "COLA_singleobjects_benchmark_GQA.json"
    ann.write_text(json.dumps(data))
    return {"ann": str(ann), "image_root": [str(root / "other"), str(folder)]}


def expected_map(score):
    """score(image index, class) -> the mean AP by brute force, over the classes COLA keeps."""
    aps = []
    for k in range(len(CLASSES)):
        labels = [int(k in shown) for shown, _ in IMAGES]
        hard = [n for n, (_, h) in enumerate(IMAGES) if k in h]
        if any(labels) and hard and any(labels[n] for n in hard):
            aps.append(brute_ap([score(n, k) for n in hard], [labels[n] for n in hard]))
    return 100 * float(np.mean(aps))


def test_average_precision_handles_ties_as_one_threshold():
    assert average_precision([3, 2, 1], [1, 1, 0]) == 1.0
    assert average_precision([1, 2, 3], [1, 0, 0]) == pytest.approx(1 / 3)
    assert average_precision([1, 1, 1, 1], [1, 0, 0, 1]) == 0.5  # all tied: the positive rate
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = rng.integers(0, 4, 12).tolist()
        lab = rng.integers(0, 2, 12).tolist()
        if any(lab):
            assert average_precision(s, lab) == pytest.approx(brute_ap(s, lab))


@pytest.mark.parametrize("shape", ["dict", "list"])
def test_toy_encoders_give_the_brute_force_map(tmp_path, shape):
    world = World()
    opts = write_cola_single(world, tmp_path / "cola", shape)
    ev = build_one("cola_single", opts)
    run = lambda mode: run_suite(ev, ToyEncoder(world, mode), ToyEncoder(world).tokenizer,
                                 ToyEncoder(world).preprocess)
    oracle = run("oracle")
    assert oracle.metrics == {"map": 100.0}
    assert oracle.counts == {"images": 6, "skipped_missing_image": 1, "classes_scored": 3,
                             "classes_no_positive": 1, "classes_no_hard_image": 1,
                             "classes_no_hard_positive": 0}
    rev = run("reversed")
    # the toy image embedding is the normalised sum of its captions' one-hots, negated
    toy = lambda n, k: -float(k in IMAGES[n][0]) / max(1, len(IMAGES[n][0])) ** 0.5
    assert rev.metrics["map"] == pytest.approx(expected_map(toy))
    assert rev.metrics["map"] < 100
    const = run("constant")
    assert const.metrics["map"] == pytest.approx(expected_map(lambda n, k: 0.0))


def test_equals_brute_force_on_a_random_model(tmp_path):
    from train import models
    world = World()
    opts = write_cola_single(world, tmp_path / "cola")
    rng = np.random.default_rng(0)
    paths = [tmp_path / "cola" / "VG_100K" / f"{2414600 + n}.jpg" for n in range(len(IMAGES))]
    for p in paths:
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(p)
    torch.manual_seed(0)
    model, _, preprocess, tokenizer = models.create("hnclip-tiny")
    model.eval()
    res = run_suite(build_one("cola_single", opts), model, tokenizer, preprocess)
    with torch.no_grad():
        img = [model.encode_image(preprocess(Image.open(p).convert("RGB"))[None], normalize=True)[0]
               for p in paths]
        txt = [model.encode_text(tokenizer([c]), normalize=True)[0] for c in CLASSES]
    want = expected_map(lambda n, k: float(img[n] @ txt[k]))
    assert res.metrics["map"] == pytest.approx(want, abs=1e-4)


def test_bad_rows_are_named(tmp_path):
    world = World()
    opts = write_cola_single(world, tmp_path / "cola")
    data = json.loads(open(opts["ann"]).read())
    data["data"][2][2] = [1, 0]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    roots = opts["image_root"]
    with pytest.raises(ValueError, match="item 2: label must hold one 0/1 per class"):
        build_one("c", {"type": "cola_single", "ann": str(tmp_path / "bad.json"), "image_root": roots})
    (tmp_path / "bad2.json").write_text(json.dumps({"data": []}))
    with pytest.raises(ValueError, match="must hold `labels`"):
        build_one("c", {"type": "cola_single", "ann": str(tmp_path / "bad2.json"), "image_root": roots})
