"""The science stage at a toy size: a reproduction with kept checkpoints and per-set scores, then
train.repro.science (dynamics, probes, WiSE-FT, margins) through its command line, checked
against the files it wrote."""
import json
from statistics import mean

import pytest
from scipy.stats import kendalltau

from train.repro import data, evaluate, run, science, science_report, skill_dynamics

PROBE = ["data.generated.size=48", "data.generated.train=100", "data.generated.val=80",
         "data.generated.test=80", "search.max_epochs=2", "search.max_epochs_unfrozen=1",
         "search.lrs_frozen=[1e-3]", "search.lrs_unfrozen=[1e-4]", "tasks=[rcm,vsr]"]


def quoted(key, overrides):
    """key=['a=1','b=[2,3]']: a list of overrides, each item quoted (an override's '=' and brackets
    are Hydra's structure otherwise)."""
    return f"{key}=[" + ",".join(f"'{o}'" for o in overrides) + "]"


@pytest.fixture(scope="module")
def repro(tmp_path_factory):
    root = tmp_path_factory.mktemp("science")
    data.main([f"out={root / 'data'}", "pretrain_shards=1", "finetune_shards=1", "pairs_per_shard=24",
               "set_shards=2", "sets_per_subset=3", "heldout_per_subset=3", "zeroshot_per_class=1"])
    d = str(root / "data")
    small = ["steps=4", "warmup=0", "pairs=8"]
    extra = ["data.workers=0", "data.shuffle_buffer=8", "logger.log_every=1"]
    keep = ["checkpoint.every_steps=2", "checkpoint.keep_last=100000"]
    run.main(["stage=pretrain", f"data={d}", f"out={root / 'pretrain'}", *small,
              quoted("extra", extra + keep)])
    base = root / "pretrain" / "final" / "open_clip_pytorch_model.bin"
    runs = {"none": base}
    for v, seed in (("hn", 0), ("clip", 0), ("clip", 1), ("both", 0)):
        out = root / (v if seed == 0 else f"{v}_s{seed}")
        run.main(["stage=finetune", f"variant={v}", f"init={base}", f"data={d}", f"out={out}", "set_items=9",
                  f"seed={seed}", *small, quoted("extra", extra + (keep if seed == 0 else []))])
        runs[f"{v}_s{seed}" if v == "clip" else v] = out / "final" / "open_clip_pytorch_model.bin"
    for name, w in runs.items():
        evaluate.main([f"weights={w}", f"data={d}", f"out={root / 'scores' / f'{name}.json'}",
                       f"sets_out={root / 'sets' / f'{name}.json'}"])
    science.main([f"repro={root}", "jobs=2", "limit=2", "alphas=[0,0.5,1]", "probe_seeds=[0]",
                  quoted("probe_extra", PROBE), "note=toy run"])
    return root


def test_dynamics_cover_every_kept_checkpoint(repro):
    res = json.loads((repro / "science" / "science.json").read_text())
    dyn = res["dynamics"]
    assert set(dyn) == {"pretrain", "hn", "clip", "both"}
    for name, r in dyn.items():
        assert r["steps"] == [0, 2, 4]
        assert ("in_set" in r["skills"]) == (name != "pretrain")
        for k in skill_dynamics.SPEC_SKILLS + ["zeroshot"]:
            ys = [r["history"][str(s)][k] for s in r["steps"]]
            tau = r["character"][k]["trend_tau"]
            if len(set(ys)) > 1:
                assert tau == pytest.approx(kendalltau(r["steps"], ys).statistic)
            else:
                assert tau != tau
    # a fine-tuning starts from the pre-trained model: its step 0 is pre-training's last point
    for k in skill_dynamics.SPEC_SKILLS:
        assert dyn["hn"]["history"]["0"][k] == dyn["pretrain"]["history"]["4"][k]


def test_wise_ends_are_the_base_and_the_fine_tuned_model(repro):
    res = json.loads((repro / "science" / "science.json").read_text())
    curve = res["wise"]["hn"]["curve"]
    assert [c["alpha"] for c in curve] == [0.0, 0.5, 1.0]
    hist = res["dynamics"]["hn"]["history"]
    spec = lambda h: mean(h[k] for k in skill_dynamics.SPEC_SKILLS)
    assert curve[0]["spec_mean"] == pytest.approx(spec(hist["0"]))      # alpha 0 = base
    assert curve[-1]["spec_mean"] == pytest.approx(spec(hist["4"]))     # alpha 1 = last checkpoint
    assert curve[0]["spec_gain"] == 0 and curve[0]["zeroshot_change"] == 0


def test_margins_recomputed_from_the_per_set_files(repro):
    res = json.loads((repro / "science" / "science.json").read_text())
    sets = lambda n: json.loads((repro / "sets" / f"{n}.json").read_text())
    base, runs = sets("none"), [sets("clip_s0"), sets("clip_s1")]
    keys = [k for k in skill_dynamics.SPEC_SKILLS if k.endswith("i2t")]
    want = mean(mean(100 * (sum(r[k][i] for r in runs) / 2 - base[k][i]) for i in range(len(base[k])))
                for k in keys)
    est = res["margins"]["L_clip-only mean SPEC I2T vs base"]
    assert est["diff"] == pytest.approx(want)
    assert est["n_seeds"] == 2 and est["verdict"] in ("holds", "fails", "undecided")
    assert est["ci95"][0] < est["diff"] < est["ci95"][1] or est["se"] == 0


def test_probes_and_control_and_report(repro):
    res = json.loads((repro / "science" / "science.json").read_text())
    summary = res["probes"]["summary"]
    assert {"none", "hn", "clip", "both", "none+joint", "chance"} <= set(summary)
    assert {k.split("/")[0] for k in summary["none"]} == {"rcm", "vsr"}
    assert "rcm/linear/1" in summary["none"] and "rcm/linear/final" in summary["none+joint"]
    md = (repro / "science" / "science.md").read_text()
    for title in ("## 1.", "## 2.", "## 3.", "## 4.", "toy run"):
        assert title in md
    e = res["margins"]["combined zero-shot vs base"]
    assert f"{e['diff']:+.2f}" in md
    for png in ("science_dynamics", "science_tau", "science_probes", "science_wise"):
        assert (repro / "science" / f"{png}.png").stat().st_size > 1000


def test_rerun_skips_finished_work_and_report_rebuilds_elsewhere(repro, tmp_path):
    before = (repro / "science" / "points" / "wise" / "hn" / "alpha-0.50.json").stat().st_mtime_ns
    science.main([f"repro={repro}", "jobs=1", "limit=2", "alphas=[0,0.5,1]", "probe_seeds=[0]",
                  quoted("probe_extra", PROBE), "stages=[wise]"])
    assert (repro / "science" / "points" / "wise" / "hn" / "alpha-0.50.json").stat().st_mtime_ns == before
    science_report.main([f"science_json={repro / 'science' / 'science.json'}", f"out={tmp_path}",
                         "img_dir=img"])
    assert "](img/science_wise.png)" in (tmp_path / "science.md").read_text()
    assert (tmp_path / "img" / "science_wise.png").is_file() and (tmp_path / "science.json").is_file()


def test_missing_reproduction_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="launch/repro_mini.sh"):
        science.main([f"repro={tmp_path}"])


@pytest.mark.parametrize("argv, words", [
    (["alphas=[0,0.5]"], ["alphas=[0.0, 0.5]", "including 0 and 1"]),
    (["alphas=[0,1.5,1]"], ["in [0, 1]"]),
    (["stages=[wise,plots]"], ["stages=", "dynamics, probes, wise, margins"]),
    (["jobs=0"], ["jobs=0", ">= 1"]),
    (["--probe-extra", "tasks=[rcm]"], ["'--probe-extra' is not an option", "probe_extra=VALUE"]),
])
def test_bad_science_keys_exit_2_before_any_work(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as e:
        science.main([f"repro={tmp_path}", *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and all(w in err for w in words), err
    assert not (tmp_path / "science").exists()


def test_probe_extra_items_arrive_verbatim(tmp_path, monkeypatch):
    """Each quoted item of probe_extra reaches the probe's overrides as written (brackets too)."""
    seen = {}

    def planned_only(args):
        seen["probe_extra"] = list(args.probe_extra)
        raise FileNotFoundError("planned only")
    monkeypatch.setattr(science, "plan", planned_only)
    with pytest.raises(FileNotFoundError, match="planned only"):
        science.main([f"repro={tmp_path}", quoted("probe_extra", PROBE)])
    assert seen["probe_extra"] == PROBE
