"""The one command style (hn_data/cli.py): key=value overrides onto a typed schema, exit 2 with
the key named for a bad one (before any work), `--help` listing the keys, the run directory
rule; and every console script in pyproject.toml answering `--help`."""
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import tomllib

from hn_data.cli import REQUIRED, ConfigError, command, setting

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ToyCommand:
    out: str = setting(REQUIRED, "where the result goes")
    count: int = setting(2, "how many")
    names: List[str] = setting(["a", "b"], "which")
    ratio: Optional[float] = setting(None, "an optional number")
    extra: Dict[str, int] = setting({}, "free-form: any sub-key")


def _toy_run(cfg: ToyCommand):
    if cfg.count == 99:
        raise RuntimeError("the run itself failed")
    out = Path(cfg.out)
    (out / "result.json").write_text(json.dumps({"count": cfg.count, "names": cfg.names,
                                                  "ratio": cfg.ratio, "extra": cfg.extra}))
    return cfg


def _toy_check(cfg: ToyCommand):
    if cfg.count < 0:
        raise ConfigError(f"invalid value count={cfg.count}: must be >= 0")


toy_main = command(ToyCommand, _toy_run, prog="hnclip-toy", doc="A toy command.", run_dir="${out}",
                   check=_toy_check)


def test_overrides_are_typed_and_the_run_directory_is_out(tmp_path):
    out = tmp_path / "run"
    cfg = toy_main([f"out={out}", "count=5", "names=[x,y,z]", "ratio=0.5", "extra.seen=3"])
    assert isinstance(cfg, ToyCommand) and cfg.count == 5 and cfg.names == ["x", "y", "z"]
    assert json.loads((out / "result.json").read_text()) == {"count": 5, "names": ["x", "y", "z"],
                                                            "ratio": 0.5, "extra": {"seen": 3}}
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]  # no .hydra/, no log file
    again = toy_main([f"out={out}"])  # a second call in the same process composes afresh
    assert again.count == 2 and again.ratio is None


@pytest.mark.parametrize("argv, words", [
    (["count=3"], ["missing required key", "out="]),
    (["out=X", "cuont=3"], ["unknown config key 'cuont'", "count"]),
    (["out=X", "+bogus=1"], ["unknown config key 'bogus'"]),
    (["out=X", "count=many"], ["count", "many"]),
    (["out=X", "count=-1"], ["count=-1", ">= 0"]),
    (["--out", "X"], ["'--out' is not an option", "out=VALUE"]),
])
def test_a_bad_key_or_value_exits_2_naming_it_before_any_work(tmp_path, capsys, argv, words):
    argv = [a.replace("X", str(tmp_path / "never")) for a in argv]
    with pytest.raises(SystemExit) as e:
        toy_main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("hnclip-toy: ")
    assert all(w in err for w in words), err
    assert not (tmp_path / "never").exists()


def test_from_the_command_line_main_returns_none_so_a_console_script_exits_0(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["hnclip-toy", f"out={tmp_path}", "count=4"])
    assert toy_main() is None  # console scripts do sys.exit(main())
    assert json.loads((tmp_path / "result.json").read_text())["count"] == 4


def test_an_error_of_the_run_itself_propagates(tmp_path):
    with pytest.raises(RuntimeError, match="the run itself failed"):
        toy_main([f"out={tmp_path}", "count=99"])


def test_help_lists_every_key_with_its_type_default_and_meaning(capsys):
    with pytest.raises(SystemExit) as e:
        toy_main(["--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0 and "A toy command." in text
    for line in ("out ", "str, required: where the result goes", "count ", "int, default 2: how many",
                 "list of str, default [a,b]: which", "float or null, default null", "mapping"):
        assert line in text, text


def test_help_shows_dollars_of_the_doc_literally(capsys):
    doc = "Select with skills='mean|R@1$' (a regex), never ${interpolated}."
    main = command(ToyCommand, _toy_run, prog="hnclip-toy-dollar", doc=doc, run_dir="${out}")
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and doc in capsys.readouterr().out


def _scripts():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


# console scripts still on their own argument parser (not built with hn_data.cli.command)
OWN_PARSER = {"hnclip-probe-report"}
# Hydra commands composed from conf/ (their --help prints the composed config)
CONF_COMMANDS = {"hnclip-train": "optim:", "hnclip-probe": "features:"}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(_scripts()))
def test_every_console_script_answers_help_and_lists_its_keys(script):
    module, func = _scripts()[script].split(":")
    code = (f"import sys; sys.argv[0] = {script!r}; import importlib; "
            f"m = importlib.import_module({module!r}); f = getattr(m, {func!r}); "
            "print('KEYS', *[getattr(f, 'prefix', '') + k "
            "for k in getattr(getattr(f, 'schema', None), '__dataclass_fields__', {})]); "
            "sys.stdout.flush(); f()")
    r = subprocess.run([sys.executable, "-c", code, "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    first, _, text = r.stdout.partition("\n")
    keys = first.split()[1:]
    if script in OWN_PARSER:
        assert keys == [] and "usage" in text.lower()
    elif script in CONF_COMMANDS:
        assert CONF_COMMANDS[script] in text
    else:
        assert keys, f"{script} is not built with hn_data.cli.command"
        missing = [k for k in keys if f"  {k} " not in text]
        assert missing == [], text


def test_engine_runs_as_a_user_would_and_refuses_a_bad_subset(tmp_path):
    out = tmp_path / "engine"
    r = subprocess.run([sys.executable, "-m", "hn_data.engine", f"out={out}", "train_per_subset=1",
                        "heldout_per_subset=1", "train_shards=1", "heldout_shards=1", "size=32",
                        "subsets=[count,existence]"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_sets"] == 2 and summary["heldout_sets"] == 2 and summary["size"] == 32
    assert (out / ".complete").is_file() and not (out / ".hydra").exists()
    bad = subprocess.run([sys.executable, "-m", "hn_data.engine", f"out={tmp_path / 'bad'}",
                          "subsets=[count,colour]"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "colour" in bad.stderr and not (tmp_path / "bad").exists()


def test_a_text_value_with_braces_is_taken_literally(tmp_path):
    out = tmp_path / "shards-{000000..000001}"
    cfg = toy_main([f"out={out}"])
    assert cfg.out == str(out) and (out / "result.json").is_file()
    names = toy_main([f"out={tmp_path}", "names=[a-{0..1}.tar,b-{x,y}.tar,'c,d']"]).names
    assert names == ["a-{0..1}.tar", "b-{x,y}.tar", "c,d"]
    with pytest.raises(SystemExit) as e:  # a mapping is still no text
        toy_main([f"out={tmp_path}", "count={a:1}"])
    assert e.value.code == 2


def test_a_text_value_with_parentheses_or_brackets_is_taken_literally(tmp_path):
    out = tmp_path / "(a|b)[0-9]$"  # a regular expression's characters, not Hydra's grammar
    assert toy_main([f"out={out}"]).out == str(out) and (out / "result.json").is_file()
    assert toy_main([f"out={tmp_path}", "names=[(a|b)$,[xy]]"]).names == ["(a|b)$", "[xy]"]


def test_a_bare_value_is_refused_naming_the_required_key(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        toy_main([str(tmp_path / "never"), "count=3"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"give out={tmp_path / 'never'}" in err, err
    assert not (tmp_path / "never").exists()


def test_demo_data_runs_as_a_user_would(tmp_path):
    out = tmp_path / "diag"
    r = subprocess.run([sys.executable, "-m", "train.eval.demo_data", f"out={out}", "per_class=1", "pairs=3",
                        "size=32"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    from hn_data.objects import CLASSES
    assert sorted(p.name for p in (out / "zeroshot").iterdir()) == sorted(CLASSES)
    assert all(len(list((out / "zeroshot" / c).glob("*.png"))) == 1 for c in CLASSES)
    assert sorted(p.name for p in (out / "retrieval").iterdir()) == ["pairs-00000.tar", "pairs-00001.tar"]
    bad = subprocess.run([sys.executable, "-m", "train.eval.demo_data", f"out={tmp_path / 'no'}", "pairs=0"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "pairs=0" in bad.stderr and not (tmp_path / "no").exists()
