"""Hateful Memes in its released layout (img/<id>.png, <split>.jsonl): the zero-shot evaluator
finds it from the folder, reads dev_seen by default (ELEVATER's 500 test images) or the split
asked for, scores ROC AUC of the hateful class (toy oracle encoder: 100; reversed: 0; a mixed
fixture against an AUC computed by hand), and refuses a split without labels and a path that
leaves the folder; a listed image that is missing is skipped and counted."""
import json
import math

import pytest

from eval_toy import ToyEncoder, World
from train.eval import build_one
from train.eval.contract import run_suite
from train.eval.hateful_memes_format import read_hateful_memes, release_folder
from train.eval.zeroshot_shipped import shipped

NAMES, TEMPLATES = shipped("hateful_memes")


def prompts(shows):
    """The shipped prompts of the classes an image shows (0: "meme", 1: "hatespeech meme"); an
    image that shows neither carries a caption of its own (the toy encoder needs one tag)."""
    return [t.format(NAMES[c]) for c in shows for t in TEMPLATES] or ["a photo of a cat."]


def write_release(world, root, split="dev_seen", memes=((0, (0,)), (1, (1,)), (0, (0,)), (1, (1,))),
                  first_id=42953):
    """ROOT/img/<id>.png and ROOT/<split>.jsonl, one line a meme: (label, classes its image shows)."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    lines = []
    for n, (label, shows) in enumerate(memes):
        image_id = first_id + n
        world.image(prompts(shows)).save(root / "img" / f"{image_id}.png")
        lines.append({"id": image_id, "img": f"img/{image_id}.png", "label": label, "text": f"meme {n}"})
    (root / f"{split}.jsonl").write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    return root


def run(ev, enc):
    return run_suite(ev, enc, enc.tokenizer, enc.preprocess)


def suite(root, **opts):
    return build_one("hm", {"type": "zeroshot", "root": str(root), "dataset": "hateful_memes", **opts})


def test_release_layout_is_found_and_read_in_file_order(tmp_path):
    root = write_release(World(), tmp_path / "hateful_memes")
    assert release_folder(root) == root and release_folder(tmp_path) is None
    items, names, missing = read_hateful_memes(root)
    assert [label for _, label in items] == [0, 1, 0, 1] and missing == 0
    assert items[0][0] == str(root / "img" / "42953.png") and names == ["not hateful", "hateful"]


@pytest.mark.parametrize("mode,auc", [("oracle", 100.0), ("reversed", 0.0), ("constant", 50.0)])
def test_roc_auc_through_the_evaluator(tmp_path, mode, auc):
    world = World()
    root = write_release(world, tmp_path)
    ev = suite(root)
    assert ev.metric == "roc_auc" and ev.names == list(NAMES)  # class 0 "meme", 1 "hatespeech meme"
    result = run(ev, ToyEncoder(world, mode))
    assert result.metrics["metric/roc_auc"] == pytest.approx(auc)
    assert result.counts == {"items": 4, "skipped": 0, "skipped_missing_image": 0}


def test_roc_auc_matches_a_computation_by_hand(tmp_path):
    # images that show their own class, the other one, both or neither: the toy cosines to the
    # two prompts are then (1, 0), (0, 1), (1/sqrt 2, 1/sqrt 2) or (0, 0)
    memes = [(1, (1,)), (1, (0,)), (1, (0, 1)), (1, ()), (0, (0,)), (0, (0,)), (0, (1,)), (0, (0, 1)),
             (1, (1,)), (0, ())]
    world = World()
    ev = suite(write_release(world, tmp_path, memes=memes))
    got = run(ev, ToyEncoder(world)).metrics["metric/roc_auc"]

    def hateful_probability(shows):  # ELEVATER's softmax(100 * cosine), class 1's share
        cos = [(c in shows) / math.sqrt(len(shows)) if shows else 0.0 for c in (0, 1)]
        return 1 / (1 + math.exp(100 * (cos[0] - cos[1])))

    p = [(hateful_probability(shows), label) for label, shows in memes]
    pairs = [(a > b) + 0.5 * (a == b) for a, la in p if la == 1 for b, lb in p if lb == 0]
    assert got == pytest.approx(100 * sum(pairs) / len(pairs))
    # by hand, 5 hateful x 5 not: each showing hateful wins 4 and ties 1, each showing both or
    # neither wins 2 and ties 2, the one showing "meme" ties 2: (2 * 4.5 + 2 * 3 + 1) / 25
    assert got == pytest.approx(64.0)


def test_split_is_chosen_and_the_default_is_dev_seen(tmp_path):
    world = World()
    root = write_release(world, tmp_path)
    write_release(world, tmp_path, "dev_unseen", memes=[(0, (0,)), (1, (1,)), (1, (1,))], first_id=100)
    assert len(suite(root).items) == 4
    assert len(suite(root, split="dev_unseen").items) == 3
    listed = build_one("elevater", {"type": "zeroshot_suite", "datasets": {
        "hateful_memes": {"root": str(root), "split": "dev_unseen"}}})
    assert run(listed, ToyEncoder(world)).metrics["hateful_memes/metric/roc_auc"] == 100.0
    with pytest.raises(FileNotFoundError, match=r"train.jsonl does not exist \(splits in .*: dev_seen, "
                                                "dev_unseen"):
        suite(root, split="train")
    with pytest.raises(ValueError, match="split '../dev_seen' must be the name of a split file"):
        suite(root, split="../dev_seen")
    with pytest.raises(ValueError, match="`split` picks a Hateful Memes split file"):
        build_one("f", {"type": "zeroshot", "root": str(tmp_path / "img"), "split": "dev_seen"})


def test_a_split_without_labels_is_refused_naming_the_file(tmp_path):
    root = write_release(World(), tmp_path)
    lines = [json.dumps({"id": 1, "img": "img/42953.png", "text": "phase one test"})]
    (root / "test_seen.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"test_seen.jsonl line 1 has no 'label': test_seen.jsonl is a "
                                         "split released without labels"):
        suite(root, split="test_seen")
    (root / "dev_seen.jsonl").write_text(json.dumps({"img": "img/42953.png", "label": True}) + "\n")
    with pytest.raises(ValueError, match="dev_seen.jsonl line 1: label True is not 0"):
        read_hateful_memes(root)


@pytest.mark.parametrize("escaping", ["../outside.png", "img/../../outside.png", "/etc/hostname"])
def test_a_path_that_leaves_the_folder_is_refused(tmp_path, escaping):
    world = World()
    root = write_release(world, tmp_path / "release")
    world.image(prompts((1,))).save(tmp_path / "outside.png")
    with (root / "dev_seen.jsonl").open("a") as f:
        f.write(json.dumps({"id": 7, "img": escaping, "label": 1, "text": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"dev_seen.jsonl line 5: path .* leaves the image root"):
        suite(root)
    if not escaping.startswith("/"):  # a suite that trusts its file may read it
        assert len(suite(root, allow_outside_root=True).items) == 5


def test_a_missing_image_is_skipped_and_counted(tmp_path):
    world = World()
    root = write_release(world, tmp_path, memes=[(0, (0,)), (1, (1,)), (1, (1,)), (0, (0,))])
    (root / "img" / "42955.png").unlink()
    ev = suite(root)
    result = run(ev, ToyEncoder(world))
    assert result.counts == {"items": 3, "skipped": 0, "skipped_missing_image": 1}
    assert result.metrics["metric/roc_auc"] == 100.0
    for image in (root / "img").iterdir():
        image.unlink()
    with pytest.raises(ValueError, match=r"dev_seen.jsonl lists no image that exists .* \(4 missing\)"):
        suite(root)
