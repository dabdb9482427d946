"""ELEVATER's per-dataset zero-shot metrics: 11-point mAP and ROC AUC against hand-computed
answers and an independent brute-force computation, the choice by dataset name, and the
evaluator's figures for an oracle, a reversed and a constant toy encoder."""
import random

import numpy as np
import pytest

from eval_toy import ToyEncoder, World
from test_eval_zeroshot_shipped import run, write_folder
from train.eval import build_one
from train.eval.voc_format import VOC_CLASSES, read_voc
from train.eval.zeroshot_metrics import eleven_point_ap, mean_11point_ap, metric_name, roc_auc
from train.eval.zeroshot_shipped import shipped


def test_eleven_point_ap_by_hand():
    # ranks: P N P N. Precision 1 at recall .5, 2/3 at recall 1: t = 1, .9, .8, .7, .6 take 2/3,
    # t = .5 ... 0 take 1 -> (5 * 2/3 + 6) / 11
    assert eleven_point_ap([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx(28 / 33)
    # a negative on top: precision .5 at recall 1; ELEVATER's curve also holds (recall 0,
    # precision 1), so t = 0 takes 1 -> (10 * .5 + 1) / 11 (the devkit's own loop would give .5)
    assert eleven_point_ap([0.9, 0.5], [0, 1]) == pytest.approx(6 / 11)
    # a tie is one threshold, whatever the order of the tied images
    assert eleven_point_ap([0.5, 0.5], [1, 0]) == eleven_point_ap([0.5, 0.5], [0, 1]) == pytest.approx(6 / 11)
    assert eleven_point_ap([3.0, 2.0, 1.0], [1, 1, 0]) == 1.0


def brute_force_ap(scores, positive):
    """The same definition, computed the slow way: every distinct score as a threshold."""
    n_pos = sum(positive)
    points = [(1.0, 0.0)]
    for v in set(scores):
        chosen = [p for s, p in zip(scores, positive) if s >= v]
        points.append((sum(chosen) / len(chosen), sum(chosen) / n_pos))
    return sum(max(p for p, r in points if r >= t) for t in np.linspace(1, 0, 11)) / 11


def brute_force_auc(scores, positive):
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    return 100 * sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))


def test_metrics_match_brute_force_on_random_scores_with_ties():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(2, 30)
        scores = [round(rng.random(), 1) for _ in range(n)]  # one decimal: many ties
        positive = [rng.random() < 0.4 for _ in range(n)]
        if not any(positive) or all(positive):
            continue
        assert eleven_point_ap(scores, positive) == pytest.approx(brute_force_ap(scores, positive))
        assert roc_auc(scores, positive) == pytest.approx(brute_force_auc(scores, positive))


def test_roc_auc_by_hand_and_needs_both_classes():
    # positives .9 and .4, negatives .5 .1 .4: .9 wins 3, .4 wins 1 and ties 1 -> 4.5 / 6
    assert roc_auc([0.9, 0.4, 0.5, 0.1, 0.4], [1, 1, 0, 0, 0]) == pytest.approx(75.0)
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([0.1, 0.2], [1, 1])


def test_mean_11point_ap_is_over_classes_with_positives():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]])  # class 2 has no image: left out
    class1 = eleven_point_ap(probs[:, 1], targets[:, 1])
    assert mean_11point_ap(probs, targets) == pytest.approx(100 * (1.0 + class1) / 2)


def test_metric_name_follows_elevater_and_can_be_overridden():
    assert metric_name(None, "voc2007") == "11point_map"
    assert metric_name(None, "hateful_memes") == "roc_auc"
    assert metric_name(None, "pets") == "mean_per_class" and metric_name(None, "cifar10") == "accuracy"
    assert metric_name(None, None) == "accuracy"
    assert metric_name("11point_mAP", "cifar10") == "11point_map"  # ELEVATER's spellings
    assert metric_name("mean-per-class") == "mean_per_class"
    with pytest.raises(ValueError, match="voc: metric 'map'"):
        metric_name("map", where="voc")


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    world, tmp = World(), tmp_path_factory.mktemp("zs_metrics")
    roots = {}
    for name in ("voc2007", "hateful_memes"):
        classes, templates = shipped(name)
        per_class = 1 if name == "voc2007" else 2
        roots[name] = str(write_folder(world, tmp / name, classes, templates, per_class=per_class))
    return world, roots


# the reversed and the constant encoders rank each class's one positive at (or tied with) the
# bottom of 20 images: precision 1/20 at every recall but the end point's 0 -> (10 / 20 + 1) / 11
LAST_OF_20 = 100 * (10 / 20 + 1) / 11


@pytest.mark.parametrize("mode,voc,memes", [("oracle", 100.0, 100.0), ("reversed", LAST_OF_20, 0.0),
                                            ("constant", LAST_OF_20, 50.0)])
def test_evaluator_reports_each_datasets_own_metric(sets, mode, voc, memes):
    world, roots = sets
    ev = build_one("elevater", {"type": "zeroshot_suite", "datasets": {
        "voc2007": {"root": roots["voc2007"]}, "hateful_memes": {"root": roots["hateful_memes"]}}})
    m = run(ev, ToyEncoder(world, mode)).metrics
    assert m["voc2007/metric/11point_map"] == pytest.approx(voc)
    assert m["hateful_memes/metric/roc_auc"] == pytest.approx(memes)
    assert m["avg/metric"] == pytest.approx((voc + memes) / 2)
    assert m["voc2007/top1"] == (100.0 if mode == "oracle" else 0.0)  # top-1 is still reported


def test_metric_override_and_bad_choices(sets):
    world, roots = sets
    voc = {"type": "zeroshot", "root": roots["voc2007"], "dataset": "voc2007"}
    ev = build_one("v", {**voc, "metric": "accuracy"})
    assert run(ev, ToyEncoder(world)).metrics == {"top1": 100.0, "mean_per_class": 100.0,
                                                  "metric/accuracy": 100.0}
    ev = build_one("v", {"type": "zeroshot", "root": roots["hateful_memes"], "metric": "11point_map"})
    assert run(ev, ToyEncoder(world, "reversed")).metrics["metric/11point_map"] < 100.0
    with pytest.raises(ValueError, match="metric 'auc' is not one of"):
        build_one("v", {"type": "zeroshot", "root": roots["voc2007"], "metric": "auc"})
    with pytest.raises(ValueError, match="roc_auc needs two classes"):
        build_one("v", {**voc, "metric": "roc_auc"})
    with pytest.raises(ValueError, match="a `limit` that keeps the first class only"):
        build_one("v", {"type": "zeroshot", "root": roots["hateful_memes"], "dataset": "hateful_memes",
                        "limit": 1})


def test_difficult_entries_are_left_out_of_their_class():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    # class 0: the top image is difficult-only (-1): left out, the positive is then first
    assert mean_11point_ap(probs[:, :1], np.array([[-1], [1], [0]])) == pytest.approx(100.0)
    # counted as a negative it would rank above the positive: (10 * 1/2 + 1) / 11
    assert mean_11point_ap(probs[:, :1], np.array([[0], [1], [0]])) == pytest.approx(100 * 6 / 11)


def write_voc(world, root):
    """The devkit's VOC2007/ folder: one image per class, one showing aeroplane and person, and
    one showing a bird only as a difficult object (the same look as the bird image)."""
    folder = root / "VOCdevkit" / "VOC2007"
    (folder / "JPEGImages").mkdir(parents=True)
    (folder / "ImageSets" / "Main").mkdir(parents=True)
    _, templates = shipped("voc2007")
    shows = {f"{k + 1:06d}": ([name], []) for k, name in enumerate(VOC_CLASSES)}
    shows["000021"] = (["aeroplane", "person"], [])
    shows["000022"] = ([], ["bird"])
    for image_id, (positive, difficult) in shows.items():
        img = world.image([t.format(c) for c in positive + difficult for t in templates])
        img.save(folder / "JPEGImages" / f"{image_id}.jpg", quality=95)
    for name in VOC_CLASSES:
        label = {i: 1 if name in pos else 0 if name in diff else -1 for i, (pos, diff) in shows.items()}
        lines = [f"{i} {v:2d}" for i, v in label.items()]  # the devkit writes "000001 -1", "000002  1"
        (folder / "ImageSets" / "Main" / f"{name}_test.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_voc2007_devkit_folder_is_multi_label(tmp_path):
    world = World()
    folder = write_voc(world, tmp_path)
    items, names = read_voc(folder)
    assert names == list(VOC_CLASSES) and len(items) == 22
    assert items[20][1].positive == {VOC_CLASSES.index("aeroplane"), VOC_CLASSES.index("person")}
    assert items[21][1].positive == set() and items[21][1].difficult == {VOC_CLASSES.index("bird")}
    ev = build_one("voc", {"type": "zeroshot", "root": str(tmp_path), "dataset": "voc2007"})
    assert ev.metric == "11point_map" and ev.names == list(shipped("voc2007")[0])  # not the devkit's order
    table = ev.names.index("diningtable")
    assert ev.items[VOC_CLASSES.index("diningtable")][1].positive == {table}  # relabelled by name
    oracle = run(ev, ToyEncoder(world)).metrics
    assert oracle == {"top1": 100.0, "mean_per_class": 100.0, "metric/11point_map": 100.0}
    reversed_ = run(ev, ToyEncoder(world, "reversed")).metrics
    assert reversed_["top1"] == 0.0 and reversed_["metric/11point_map"] < 20.0
    with pytest.raises(ValueError, match="roc_auc needs single-label data"):
        build_one("voc", {"type": "zeroshot", "root": str(folder), "dataset": "voc2007", "metric": "roc_auc"})


def test_voc2007_release_errors_name_the_file(tmp_path):
    folder = write_voc(World(), tmp_path)
    main = folder / "ImageSets" / "Main"
    (main / "cow_test.txt").write_text("000001 -1\n000002 yes\n")
    with pytest.raises(ValueError, match=r"cow_test.txt line 2: expected '<image id> <1\|-1\|0>'"):
        read_voc(folder)
    (main / "cow_test.txt").write_text("000001 -1\n")
    with pytest.raises(ValueError, match="image 000002 is not listed in every class's test file"):
        read_voc(folder)
    (main / "cow_test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="cow_test.txt does not exist"):
        read_voc(folder)
