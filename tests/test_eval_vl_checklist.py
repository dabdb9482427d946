"""VL-CheckList on a fixture in its released layout (corpus/v1/<type>/<corpus>.yaml naming
data/<...>.json lists of [image, {POS, NEG}], images under vg/ swig/ hake/): oracle 100,
reversed 0, ties 0; only POS[0] and NEG[0] count (its ITC task); missing images skipped and
counted; the per-level means; and agreement with a plain per-item loop on a tiny random
open_clip model. The captions are our own, written in the release's format (the VL-CheckList
repository, om-ai-lab/VL-CheckList, states no licence for its data, so none is copied)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from eval_toy import ToyEncoder, World
from train.eval import build_one
from train.eval.contract import run_suite

# (type path, corpus, ANNO_PATH, IMG_ROOT, items, of which the image is missing) as the release
# wires them (its corpus/v1 yamls)
CORPORA = [
    ("Attribute/color", "vg", "data/Attribute/vg/color.json", "vg/", 3, 0),
    ("Attribute/color", "vaw", "data/Attribute/vaw/color.json", "vg", 2, 1),
    ("Attribute/material", "vg", "data/Attribute/vg/material.json", "vg/", 2, 0),
    ("Object/Location/center", "swig_agent",
     "data/Object/Location/swig_location/swig_agent/swig_agent_center.json", "swig/", 2, 0),
    ("Object/Location/margin", "vg_obj", "data/Object/Location/vg_location/vg_obj_margin.json", "vg/", 2, 0),
    ("Object/Size/large", "hake", "data/Object/Size/hake_size/hake_obj_large.json", "hake/", 2, 2),
    ("Object/Size/small", "vg_subj", "data/Object/Size/vg_size/vg_subj_small.json", "vg/", 3, 0),
    ("Relation/spatial", "vg", "data/Relation/vg/spatial.json", "vg/", 2, 0),
    ("Relation/action", "swig", "data/Relation/swig_action.json", "swig/", 2, 0),
]


def write_vl_checklist(world, root, corpora=CORPORA):
    """The release's layout under root/release (corpus/, data/) and root/images (vg/, swig/,
    hake/). Each item's image carries POS[0] only; its later NEG captions are ones the image
    does carry, so a scorer that looked past NEG[0] (or at other POS) would be wrong."""
    release, images = Path(root) / "release", Path(root) / "images"
    n = 0
    for kind, corpus, anno, img_root, count, missing in corpora:
        ypath = release / "corpus" / "v1" / kind / f"{corpus}.yaml"
        ypath.parent.mkdir(parents=True, exist_ok=True)
        ypath.write_text(f'ANNO_PATH: "{anno}"\nIMG_ROOT: "{img_root}"\nTYPE: "TUPLE_JSON"')
        records = []
        for i in range(count):
            n += 1
            sub = "VG_100K" if img_root.startswith("vg") else ""
            rel = f"{sub}/{n}.jpg" if sub else f"item_{n}.jpg"
            pos = [f"{kind} {corpus} {i} true"]
            records.append([rel, {"POS": pos + [f"{kind} {i} other true"],
                                  "NEG": [f"{kind} {corpus} {i} false", pos[0]]}])
            if i >= count - missing:
                continue  # the image is not downloaded
            path = images / img_root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            world.image(pos).save(path, quality=95)
        (release / anno).parent.mkdir(parents=True, exist_ok=True)
        (release / anno).write_text(json.dumps(records))
    return {"root": str(release), "image_root": str(images)}


def run(ev, enc):
    return run_suite(ev, enc, enc.tokenizer, enc.preprocess)


@pytest.fixture()
def bench(tmp_path):
    world = World()
    return world, write_vl_checklist(world, tmp_path)


@pytest.mark.parametrize("mode,expected", [("oracle", 100.0), ("reversed", 0.0), ("constant", 0.0)])
def test_known_answers(bench, mode, expected):
    world, opts = bench
    res = run(build_one("vl_checklist", opts), ToyEncoder(world, mode))
    assert res.metrics and all(v == expected for v in res.metrics.values()), res.metrics
    assert res.tie_rule == "strict"


def test_levels_skips_and_counts(bench):
    world, opts = bench
    res = run(build_one("vl_checklist", opts), ToyEncoder(world))
    expected = {f"{k}/{c}/acc" for k, c, *_, count, missing in CORPORA if count > missing}
    expected |= {"Attribute/color/acc", "Attribute/material/acc", "Attribute/acc",
                 "Object/Location/center/acc", "Object/Location/margin/acc", "Object/Location/acc",
                 "Object/Size/small/acc", "Object/Size/acc", "Object/acc",
                 "Relation/spatial/acc", "Relation/action/acc", "Relation/acc", "avg/acc"}
    assert set(res.metrics) == expected  # hake has no image: no figure
    assert res.counts["skipped_missing_image"] == 3 and res.counts["empty_corpora"] == 1
    assert res.counts["items"] == sum(c - m for *_, c, m in CORPORA)
    assert res.counts["Attribute/color/vaw/items"] == 1


def test_limit_types_and_corpora(bench):
    world, opts = bench
    ev = build_one("v", {"type": "vl_checklist", **opts, "limit": 1})
    groups = [it.group for it in ev.items]
    assert len(groups) == len(set(groups)) == 8  # one item from each corpus that has images
    ev = build_one("v", {"type": "vl_checklist", **opts, "types": ["Attribute/color", "Relation"]})
    assert {it.meta["type"] for it in ev.items} == {"Attribute/color", "Relation/spatial", "Relation/action"}
    ev = build_one("v", {"type": "vl_checklist", **opts, "corpora": ["vaw"]})
    assert {it.group for it in ev.items} == {"Attribute/color/vaw"}


def test_bad_release_files_are_named(tmp_path):
    world = World()
    opts = write_vl_checklist(world, tmp_path, CORPORA[:1])
    with pytest.raises(FileNotFoundError, match="corpus"):
        build_one("v", {"type": "vl_checklist", "root": str(tmp_path), "image_root": opts["image_root"]})
    ann = Path(opts["root"]) / CORPORA[0][2]
    ann.write_text(json.dumps([["VG_100K/1.jpg", {"POS": ["a"]}]]))
    with pytest.raises(ValueError, match=r"color\.json item 0: POS and NEG"):
        build_one("v", {"type": "vl_checklist", **opts})
    ann.unlink()
    with pytest.raises(FileNotFoundError, match="names ANNO_PATH"):
        build_one("v", {"type": "vl_checklist", **opts})
    ypath = Path(opts["root"]) / "corpus" / "v1" / "Attribute" / "color" / "vg.yaml"
    ypath.write_text('ANNO_PATH: "../../etc/passwd"\nIMG_ROOT: "vg/"')
    with pytest.raises(ValueError, match="leaves the image root"):
        build_one("v", {"type": "vl_checklist", **opts})


def test_equals_a_plain_loop_on_a_random_model(bench):
    from train import models
    world, opts = bench
    rng = np.random.default_rng(0)
    for path in Path(opts["image_root"]).rglob("*.jpg"):  # random pixels: varied, untied scores
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    torch.manual_seed(0)
    model, _, preprocess, tokenizer = models.create("hnclip-tiny")
    model.eval()
    ours = run_suite(build_one("vl_checklist", opts), model, tokenizer, preprocess)

    hits = {}
    with torch.no_grad():
        for kind, corpus, anno, img_root, *_ in CORPORA:
            for rel, texts in json.loads((Path(opts["root"]) / anno).read_text()):
                path = Path(opts["image_root"]) / img_root / rel
                if not path.is_file():
                    continue
                img = model.encode_image(preprocess(Image.open(path).convert("RGB"))[None], normalize=True)
                pos, neg = model.encode_text(tokenizer([texts["POS"][0], texts["NEG"][0]]), normalize=True)
                hits.setdefault(f"{kind}/{corpus}", []).append(float(img[0] @ pos) > float(img[0] @ neg))
    acc = {g: 100 * np.mean(h) for g, h in hits.items()}
    mean = lambda *xs: float(np.mean(xs))
    color = mean(acc["Attribute/color/vg"], acc["Attribute/color/vaw"])
    attribute = mean(color, acc["Attribute/material/vg"])
    location = mean(acc["Object/Location/center/swig_agent"], acc["Object/Location/margin/vg_obj"])
    obj = mean(location, acc["Object/Size/small/vg_subj"])
    relation = mean(acc["Relation/spatial/vg"], acc["Relation/action/swig"])
    for g, a in acc.items():
        assert ours.metrics[f"{g}/acc"] == pytest.approx(a), g
    assert ours.metrics["Attribute/color/acc"] == pytest.approx(color)
    assert ours.metrics["Attribute/acc"] == pytest.approx(attribute)
    assert ours.metrics["Object/Location/acc"] == pytest.approx(location)
    assert ours.metrics["Object/acc"] == pytest.approx(obj)
    assert ours.metrics["Relation/acc"] == pytest.approx(relation)
    assert ours.metrics["avg/acc"] == pytest.approx(mean(obj, attribute, relation))
    assert 0 < ours.metrics["avg/acc"] < 100  # the random model is neither oracle nor reversed


def test_runs_from_the_evaluate_command(bench, tmp_path):
    import yaml

    from train.eval import evaluate as cmd
    _, opts = bench
    conf = tmp_path / "vlc.yaml"
    conf.write_text(yaml.safe_dump({"benchmarks": ["vl_checklist"], "suites": {"vl_checklist": opts},
                                    "batch_size": 4}))
    res = cmd.main(["model=hnclip-tiny", f"eval={conf}", f"out={tmp_path / 'out'}"])
    assert 0 <= res["vl_checklist/avg/acc"] <= 100 and "vl_checklist/Object/Location/acc" in res
    assert res["vl_checklist/counts/skipped_missing_image"] == 3
