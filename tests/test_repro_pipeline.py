"""The miniature Table-3 reproduction end to end at a toy size: data -> pre-train -> fine-tune
(the real trainer, L_hn only, so loss.clip_weight=0 is exercised) -> evaluate -> report."""
import json

import pytest

from train.repro import data, evaluate, report, run


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    data.main([f"out={root / 'data'}", "pretrain_shards=1", "finetune_shards=1", "pairs_per_shard=24",
               "set_shards=2", "sets_per_subset=3", "heldout_per_subset=2", "zeroshot_per_class=1"])
    return root


def test_data_layout_and_disjoint_splits(toy):
    d = toy / "data"
    s = json.loads((d / "summary.json").read_text())
    assert s["train_sets"] == 18 and s["heldout_sets"] == 12 and s["zeroshot_images"] == 14
    for sub in report.SUBSETS:
        items = json.loads((d / "spec_heldout" / sub / "image2text.json").read_text())
        assert items and all((d / "spec_heldout" / sub / it["query"]).is_file() for it in items)
    # no seed range of one split may reach into another's
    seeds = sorted(data.SEEDS.values())
    assert all(b - a > 1_000_000 for a, b in zip(seeds, seeds[1:]))


def test_pretrain_finetune_evaluate_report(toy):
    d = str(toy / "data")
    small = ["steps=2", "warmup=0", "pairs=8",
             "extra=['data.workers=0','data.shuffle_buffer=8','checkpoint.every_steps=0']"]
    run.main(["stage=pretrain", f"data={d}", f"out={toy / 'pre'}", *small])
    base = toy / "pre" / "final" / "open_clip_pytorch_model.bin"
    assert base.is_file()
    run.main(["stage=finetune", "variant=hn", f"init={base}", f"data={d}", f"out={toy / 'hn'}",
              "set_items=9", *small])
    cfg = (toy / "hn" / "config.yaml").read_text()
    assert "clip_weight: 0" in cfg and "pretrained: " + str(base) in cfg
    rows = (toy / "hn" / "metrics.jsonl").read_text().splitlines()
    metrics = [json.loads(line) for line in rows if line.strip()]
    last = [m for m in metrics if "loss/total" in m][-1]
    # L_hn alone: total = lambda * (hn_i2t + hn_t2i), L_clip not in it
    assert last["loss/total"] == pytest.approx(last["loss/hn_i2t"] + last["loss/hn_t2i"], rel=1e-4)
    scores = toy / "scores"
    for v, w in (("none", base), ("hn", toy / "hn" / "final" / "open_clip_pytorch_model.bin")):
        evaluate.main([f"weights={w}", f"data={d}", f"out={scores / f'{v}.json'}"])
    for v in ("clip", "both"):   # stand-ins: the report only needs four score files
        (scores / f"{v}.json").write_text((scores / "none.json").read_text())
    report.main([f"scores={scores}", f"out={toy / 'report'}"])
    md = (toy / "report" / "repro_table.md").read_text()
    s = json.loads((scores / "none.json").read_text())
    assert f"{s['mean/i2t']:.1f} ± {s['mean/i2t_se']:.1f}" in md
    assert all(0 <= s[f"{sub}/i2t"] <= 100 and s[f"{sub}/n_sets"] == 2 for sub in report.SUBSETS)
    assert (toy / "report" / "repro_chart.png").stat().st_size > 1000


def test_report_averages_fine_tuning_seeds(tmp_path):
    keys = {f"{sub}/{d}": 0.0 for sub in report.SUBSETS + ["mean"]
            for d in ("i2t", "t2i", "i2t_se", "t2i_se")}
    keys.update({"zeroshot/acc": 80.0, "zeroshot/se": 1.0, "zeroshot/chance": 7.1})

    def write(name, i2t, se):
        (tmp_path / f"{name}.json").write_text(json.dumps({**keys, "mean/i2t": i2t, "mean/i2t_se": se}))
    write("none", 30.0, 1.0)
    for v in ("hn", "both"):
        write(v, 60.0, 1.0)
    write("clip_s0", 26.0, 1.0)
    write("clip_s1", 29.0, 3.0)
    write("clip_s10", 32.0, 2.0)
    scores = report.load_scores(tmp_path)
    assert scores["clip"]["mean/i2t"] == pytest.approx(29.0)
    assert scores["clip"]["mean/i2t_se"] == pytest.approx(2.0)      # mean of the seeds' s.e.
    assert [s["seed"] for s in scores["clip"]["seeds"]] == [0, 1, 10]
    assert "3: 26.0/0.0, 29.0/0.0, 32.0/0.0" in report.table3(scores)
    assert "L_clip-only row within 2 points of base, mean SPEC I2T: -1.0" in report.claims(scores)
    write("clip", 20.0, 1.0)      # two layouts for one variant is ambiguous
    with pytest.raises(ValueError, match="clip.json"):
        report.load_scores(tmp_path)


@pytest.mark.parametrize("argv, words", [
    (["stage=train"], ["stage=train", "pretrain, finetune"]),
    (["stage=finetune", "variant=hn"], ["stage=finetune needs variant=... and init=..."]),
    (["stage=finetune", "variant=lhn", "init=W.bin"], ["variant=lhn", "both, clip, hn"]),
    (["stage=pretrain", "extra=['data.workers=0','+data.pairs=[]']"],
     ["'+data.pairs=[]'", "the stage sets data.pairs itself"]),
    (["stage=pretrain", "extra=['data.sets=x']"], ["the stage sets data.sets itself"]),
    (["pretrain"], ["not a key=value override", "stage=pretrain"]),
    (["stage=pretrain", "--steps", "3"], ["'--steps' is not an option", "steps=VALUE"]),
])
def test_a_bad_stage_variant_or_extra_exits_2_before_any_work(tmp_path, capsys, argv, words):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as e:
        run.main([*argv, f"data={tmp_path / 'no_data'}", f"out={out}"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and all(w in err for w in words), err
    assert not out.exists()


def test_data_and_evaluate_refuse_bad_keys_naming_them(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        data.main([f"out={tmp_path / 'd'}", "set_shards=0"])
    assert e.value.code == 2 and "set_shards=0" in capsys.readouterr().err
    assert not (tmp_path / "d" / "summary.json").exists()
    with pytest.raises(SystemExit) as e:
        evaluate.main([f"weights={tmp_path / 'w.bin'}", f"data={tmp_path}", f"out={tmp_path / 's.json'}",
                       "sets-out=x.json"])
    assert e.value.code == 2 and "sets_out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        report.main([f"scores={tmp_path}"])
    assert e.value.code == 2 and "out=" in capsys.readouterr().err
