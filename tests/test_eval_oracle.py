"""Every evaluator on fixtures in its official format: an oracle encoder scores 100, a reversed
one 0, a constant one (all ties) 0; plus each format's filters and counters."""
import pytest

import eval_fixtures as fx
from eval_toy import ToyEncoder, World
from train.eval import build_one
from train.eval.contract import run_suite


def run(ev, enc):
    return run_suite(ev, enc, enc.tokenizer, enc.preprocess)


def suites(tmp_path, world):
    spec = fx.write_spec(world, tmp_path / "spec")
    zf = fx.write_zeroshot_folder(world, tmp_path / "zs")
    zw = fx.write_zeroshot_wds(world, tmp_path / "zsw")
    eq = fx.write_eqben(world, tmp_path / "eqben")
    return {
        "spec": {"root": spec["root"], "classes": spec["classes"]},
        "zeroshot": {"root": zf["root"], "templates": zf["templates"]},
        "zeroshot_wds": {"type": "zeroshot", **zw},
        "retrieval": fx.write_pairs(world, tmp_path / "pairs"),
        "sugarcrepe": fx.write_sugarcrepe(world, tmp_path / "sc"),
        "aro_relation": {k: v for k,
                         v in fx.write_aro(world, tmp_path / "vgr", "relation", big=4, small=0).items()
                         if k in ("ann", "image_root")},
        "aro_attribution": {k: v for k,
                            v in fx.write_aro(world, tmp_path / "vga", "attribution", small=0).items()
                            if k in ("ann", "image_root")},
        "valse": {k: v for k, v in fx.write_valse(world, tmp_path / "valse").items() if k != "kept"},
        "winoground": fx.write_winoground(world, tmp_path / "wino"),
        "eqben": {k: v for k, v in eq.items() if k != "ann_ag"},
        "eqben_ag": {"type": "eqben", "ann": eq["ann_ag"], "image_root": eq["image_root"]},
        "svo_probes": fx.write_svo(world, tmp_path / "svo"),
        "vsr": fx.write_vsr(world, tmp_path / "vsr"),
        "karpathy": {"type": "retrieval", **fx.write_karpathy(world, tmp_path / "karpathy", n_images=12)},
        "zeroshot_suite": {"datasets": {"folder": zf, "wds": zw}},
        "mmvp_vlm": fx.write_mmvp(world, tmp_path / "mmvp"),
        "cola": fx.write_cola(world, tmp_path / "cola"),
        "crepe": fx.write_crepe(world, tmp_path / "crepe"),
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    world = World()
    tmp = tmp_path_factory.mktemp("bench")
    return world, {name: build_one(name, opts) for name, opts in suites(tmp, world).items()}


@pytest.mark.parametrize("mode,expected", [("oracle", 100.0), ("reversed", 0.0), ("constant", 0.0)])
def test_every_evaluator_scores_known_answers(built, mode, expected):
    world, evs = built
    enc = ToyEncoder(world, mode)
    for name, ev in evs.items():
        metrics = run(ev, enc).metrics
        assert metrics, name
        wrong = {k: v for k, v in metrics.items() if v != expected}
        assert not wrong, f"{name} ({mode}): {wrong}"


def test_spec_reports_subsets_means_and_cls(built):
    world, evs = built
    enc = ToyEncoder(world)
    res = run(evs["spec"], enc).metrics
    for s in ("absolute_size", "count", "mean"):
        for d in ("i2t", "t2i", "cls"):
            assert f"{s}/{d}" in res


def test_counters_and_filters(built):
    world, evs = built
    enc = ToyEncoder(world)
    assert run(evs["zeroshot_wds"], enc).counts["skipped"] == 1  # the corrupt png
    valse = run(evs["valse"], enc).counts
    assert valse["filtered_out"] == 4 and valse["items"] == 6 and len(evs["valse"].items) == 6


def test_aro_attribution_macro_drops_pairs_under_25(tmp_path):
    world = World()
    opts = fx.write_aro(world, tmp_path, "attribution", big=25, small=3)
    ev = build_one("aro_attribution", {"ann": opts["ann"], "image_root": opts["image_root"]})
    enc = ToyEncoder(world)
    att = run(ev, enc)
    # the 3 swapped items of the small attribute pair count in micro, not in the macro figure
    assert att.counts["groups_kept"] == 1
    att = att.metrics
    assert att["macro/acc"] == 100.0 and att["micro/acc"] == pytest.approx(100 * 25 / 28)


def test_aro_relation_macro_counts_relations_but_not_symmetric_ones(tmp_path):
    world = World()
    opts = fx.write_aro(world, tmp_path, "relation", big=4, small=2, symmetric=2)
    ev = build_one("aro_relation", {"ann": opts["ann"], "image_root": opts["image_root"]})
    enc = ToyEncoder(world)
    res = run(ev, enc)
    # rel0 all right, rel1 (swapped) all wrong, "next to" (swapped, symmetric) left out of macro:
    # macro 50, micro 4/8
    assert res.counts["groups_kept"] == 2
    res = res.metrics
    assert res["macro/acc"] == 50.0 and res["micro/acc"] == pytest.approx(100 * 4 / 8)


def test_crepe_skips_missing_images_and_parses_only_literals(tmp_path):
    world = World()
    opts = fx.write_crepe(world, tmp_path)
    res = run(build_one("crepe", opts), ToyEncoder(world))
    assert res.counts["skipped_missing_image"] == 2 and res.counts["items"] == 6
    assert res.metrics == {"swap_4/acc": 100.0, "negate_4/acc": 100.0, "avg/acc": 100.0}
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,x,y,width,height,caption,hard_negs\n101,0,0,4,4,a "
                   "cap,__import__('os').getcwd()\n")
    with pytest.raises(ValueError, match="not a list literal"):
        build_one("crepe", {"files": {"bad": str(bad)}, "image_root": opts["image_root"]})


def test_aro_scores_the_box_crop_not_the_whole_image(tmp_path):
    from eval_toy import decode
    from train.eval.encode import load_image
    world = World()
    fx.write_aro(world, tmp_path, "relation", big=1, small=0)
    ev = build_one("aro_relation", {"ann": str(tmp_path / "visual_genome_relation.json"),
                                    "image_root": str(tmp_path / "images")})
    key = ev.items[0].image
    assert decode(load_image(key)) == 0        # the crop is the captioned image
    assert decode(load_image(key[0])) != 0     # the whole canvas is not


def test_bad_config_and_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown type"):
        build_one("nope", {})
    with pytest.raises(ValueError, match="unknown key"):
        build_one("spec", {"root": str(tmp_path), "rooot": 1})
    with pytest.raises(ValueError, match="needs key"):
        build_one("sugarcrepe", {"root": str(tmp_path)})
    (tmp_path / "add_att.json").write_text("{not json")
    with pytest.raises(ValueError, match="add_att.json"):
        build_one("sugarcrepe", {"root": str(tmp_path), "image_root": str(tmp_path)})
    with pytest.raises(ValueError, match="multiple of"):
        build_one("winoground", {**fx.write_winoground(World(), tmp_path / "w"), "every_steps": 30}, tick=20)
