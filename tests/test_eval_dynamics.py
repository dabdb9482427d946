"""Training dynamics (curves + Kendall tau), the in-training schedule and example table, and the
reference table: synthetic histories and toy evaluators, no model."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import eval_fixtures as fx
from eval_toy import ToyEncoder, World
from train.eval import build_one, dynamics
from train.eval.contract import run_suite
from train.eval.during_training import example_rows, run_due
from train.eval.reference import markdown

ROOT = Path(__file__).resolve().parents[1]


def write_history(run_dir, rows):
    with open(run_dir / "metrics.jsonl", "w") as f:
        f.write(json.dumps({"step": 1, "time": 0, "loss/total": 3.0}) + "\n")  # a training row: ignored
        for step, vals in rows:
            f.write(json.dumps({"step": step, "time": 0, **{f"eval/{k}": v for k, v in vals.items()}}) + "\n")


def test_kendall_tau_and_report(tmp_path):
    rows = [(s, {"spec/count/i2t": 10.0 + s, "spec/count/t2i": 50.0 - s, "spec/existence/i2t": 40.0,
                 "spec/mean/i2t": [3, 1, 2, 5][s // 25 - 1], "valse/counts/filtered_out": 4.0})
            for s in (25, 50, 75, 100)]
    write_history(tmp_path, rows)
    hist = dynamics.history_from_metrics(tmp_path)
    assert list(hist) == [25, 50, 75, 100]
    skills = dynamics.skills_of(hist)
    assert "valse/counts/filtered_out" not in skills  # counters are not skills
    taus = dynamics.tau_matrix(hist, skills)
    assert taus["spec/count/i2t"]["spec/count/t2i"] == pytest.approx(-1.0)
    assert taus["spec/count/i2t"]["spec/count/i2t"] == pytest.approx(1.0)
    assert math.isnan(taus["spec/count/i2t"]["spec/existence/i2t"])  # constant: no ranking
    # [3,1,2,5] vs increasing: concordant pairs 4, discordant 2 -> tau = 2/6
    assert taus["spec/mean/i2t"]["spec/count/i2t"] == pytest.approx(1 / 3)
    rep = dynamics.write_report(tmp_path)
    assert rep["png"].stat().st_size > 1000
    text = rep["report"].read_text()
    assert "| spec/count/i2t | 35.0 | 110.0 | 110.0 (100) | +75.0 |" in text and "-1.00" in text


def test_dynamics_needs_two_evaluations(tmp_path):
    write_history(tmp_path, [(10, {"spec/mean/i2t": 1.0})])
    with pytest.raises(ValueError, match="at least 2"):
        dynamics.write_report(tmp_path)


class FakeLog:
    """MetricsLog's interface: rows go to metrics.jsonl as the real one writes them."""
    wandb = None

    def __init__(self, run_dir):
        self.path, self.rows = run_dir / "metrics.jsonl", []

    def log(self, step, values):
        self.rows.append((step, values))
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")

    def log_media(self, step, values):
        raise AssertionError("no wandb here")


def test_run_due_honours_each_suite_frequency_and_reports_at_the_end(tmp_path):
    world = World()
    wino = fx.write_winoground(world, tmp_path / "w")
    spec = fx.write_spec(world, tmp_path / "s")
    evs = {"winoground": build_one("winoground", {**wino, "every_steps": 20}, tick=10),
           "spec": build_one("spec", {"root": spec["root"]}, examples=2, tick=10)}
    enc = ToyEncoder(world)
    log = FakeLog(tmp_path)
    ran = {}
    for step in (10, 20, 30):
        res = run_due(evs, step, False, enc, enc.tokenizer, enc.preprocess, "cpu", log, tmp_path)
        ran[step] = sorted({k.split("/")[1] for k in res if k.startswith("eval/")})
    assert ran == {10: ["spec"], 20: ["spec", "winoground"], 30: ["spec"]}
    assert "eval/spec/absolute_size/i2t" in log.rows[0][1] and "eval/winoground/group" in log.rows[1][1]
    res = run_due(evs, 35, True, enc, enc.tokenizer, enc.preprocess, "cpu", log, tmp_path)
    assert "eval/winoground/group" in res  # the final evaluation runs every suite
    assert (tmp_path / "dynamics" / "skills.png").is_file()
    assert (tmp_path / "dynamics" / "report.md").is_file()
    rows = example_rows(run_suite(evs["spec"], enc, enc.tokenizer, enc.preprocess).examples)
    assert len(rows) == 4  # 2 sets per subset x 2 subsets
    bench, subset, images, caps, scores, right = rows[0]
    assert bench == "spec" and len(images) == 3 and caps.count("\n") == 2
    assert right == "3/3" and "*<" in scores


def test_reference_table_puts_published_numbers_beside_ours():
    md = markdown({"spec/mean/i2t": 40.0, "aro_relation/macro/acc": 60.0, "aro_attribution/macro/acc": 70.0,
                   "valse/counts/filtered_out": 3.0})
    assert "| spec/mean/i2t | 40.0 | 33.5 | — | — | — | — | — | 53.3 | 64.3 | 32.2 | — | Peng et al." in md
    assert ("| aro/avg | 65.0 | 57.6 | 80.9 | 76.3 | 83.0 | 86.4 | 85.1 | — | — | — | — | "
            "FSC-CLIP authors' vl_compo") in md
    assert "filtered_out" not in md


def test_final_summary_knows_no_benchmark_and_drops_counts(tmp_path):
    from train.eval.during_training import final_summary
    world = World()
    spec = fx.write_spec(world, tmp_path / "s")
    wino = fx.write_winoground(world, tmp_path / "w")
    evs = {"spec": build_one("spec", {"root": spec["root"]}, tick=1),
           "winoground": build_one("winoground", wino, tick=1)}
    enc = ToyEncoder(world)
    res = run_due(evs, 1, False, enc, enc.tokenizer, enc.preprocess, "cpu", FakeLog(tmp_path), tmp_path)
    assert any("/counts/" in k for k in res)
    final, text = final_summary(evs, res)
    assert final["mean/i2t"] == 100.0 and "count/i2t" in final and not any("counts" in k for k in final)
    assert "| mean | 100.0 | 100.0 |" in text and "| winoground/group | 100.0 |" in text



def test_dynamics_command_runs_as_a_user_would(tmp_path):
    write_history(tmp_path, [(s, {"spec/count/i2t": 1.0 + s, "spec/count/t2i": 9.0 - s, "spec/mean/i2t": s})
                             for s in (10, 20, 30)])
    out = tmp_path / "report"
    # a regular expression with parentheses and '$' is taken as text, not as Hydra grammar
    r = subprocess.run([sys.executable, "-m", "train.dynamics", f"run_dir={tmp_path}", "skills=(count)/.*$",
                        f"out={out}"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    taus = json.loads((out / "history.json").read_text())["kendall_tau"]
    assert sorted(taus) == ["spec/count/i2t", "spec/count/t2i"]
    assert taus["spec/count/i2t"]["spec/count/t2i"] == pytest.approx(-1.0)


@pytest.mark.parametrize("argv, words", [
    (["RUN"], ["'RUN' is not a key=value override", "give run_dir=RUN"]),
    (["run_dir=RUN", "eval=demo"], ["eval: only with checkpoints=true"]),
    (["run_dir=RUN", "suites.spec.root=x", "batch_size=4"], ["suites, batch_size: only with checkpoints"]),
    (["run_dir=RUN", "skills=(count"], ["skills='(count'", "regular expression"]),
    (["run_dir=RUN/nothing"], ["no such directory"]),
    (["run_dir=RUN", "skils=mean"], ["unknown config key 'skils'", "skills"]),
    (["run_dir=RUN", "--checkpoints"], ["'--checkpoints' is not an option", "checkpoints=VALUE"]),
])
def test_dynamics_refuses_bad_input_before_any_work(tmp_path, capsys, argv, words):
    write_history(tmp_path, [(s, {"spec/mean/i2t": s}) for s in (10, 20)])
    words = [w.replace("RUN", str(tmp_path)) for w in words]
    with pytest.raises(SystemExit) as e:
        dynamics.main([a.replace("RUN", str(tmp_path)) for a in argv] + [f"out={tmp_path / 'never'}"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("hnclip-dynamics: "), err
    assert all(w in err for w in words), err
    assert not (tmp_path / "never").exists()
