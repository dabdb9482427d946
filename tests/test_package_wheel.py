"""`pip install .` (not editable) is a working install: the wheel ships conf/ and the model
configs, every console script is there, and one debug step runs from an empty directory
with the repository nowhere on the path."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from conftest import ROOT

pytestmark = pytest.mark.slow
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "train", "hn_data", "conf")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from a copy of the sources (no build/ left in the checkout), installed
    without dependencies into a folder of its own; the venv's packages serve the rest."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(
            ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__", "*.egg-info")}
                                        if (ROOT / name).is_dir() else {}))
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
                   check=True, capture_output=True, timeout=300)
    wheel = next((tmp / "dist").glob("hnclip-*.whl"))
    site = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return site


def isolated(site):
    """Environment and working directory where only the installed copy can be imported."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    cwd = site.parent / "empty"
    cwd.mkdir(exist_ok=True)
    return env, cwd


def test_wheel_ships_configs_and_every_console_script(installed):
    assert (installed / "train" / "conf" / "config.yaml").is_file()
    assert (installed / "train" / "conf" / "experiment" / "paper.yaml").is_file()
    assert (installed / "train" / "model_configs" / "hnclip-tiny.json").is_file()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"hnclip-train", "hnclip-evaluate", "hnclip-probe", "hnclip-engine", "hnclip-make-data",
            "hnclip-dynamics", "hnclip-wise-ft", "hnclip-convert-spec"} <= set(scripts)
    for name in scripts:
        assert (installed / "bin" / name).is_file(), name


def test_installed_train_runs_one_debug_step_from_an_empty_dir(installed, tiny_data):
    env, cwd = isolated(installed)
    probe = subprocess.run([sys.executable, "-c", "import json, sys, train; print(train.__file__); "
                            "print(json.dumps(sys.path))"],
                           cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    where, path = probe.stdout.splitlines()[:2]
    assert Path(where).is_relative_to(installed), where
    # the venv (which lives in the checkout here) serves the dependencies; no source folder is on the path
    for entry in json.loads(path):
        if entry and not Path(entry).is_dir():  # e.g. the venv's editable-install hook: no folder
            continue
        p = Path(entry or cwd).resolve()
        assert not (p.is_relative_to(ROOT) and not p.is_relative_to(ROOT / ".venv")), entry
    r = subprocess.run([sys.executable, str(installed / "bin" / "hnclip-train"), "debug=one_step",
                        "eval.benchmarks=[]", f"data.root={tiny_data}"],
                       cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run = cwd / "outputs" / "debug_one_step"     # run_dir is relative to where the user stands
    assert (run / "config.yaml").is_file()
    assert (run / "final" / "hnclip-tiny.json").is_file()
    assert (run / "final" / "open_clip_pytorch_model.bin").is_file()
    # and the evaluation commands find their eval configs inside the package
    r = subprocess.run([sys.executable, "-c", "from train.eval.load import eval_config; "
                        "print(eval_config('full').benchmarks)"],
                       cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "winoground" in r.stdout, r.stderr[-2000:]


def test_installed_commands_take_key_value_overrides_from_an_empty_dir(installed):
    env, cwd = isolated(installed)
    out = cwd / "demo"
    r = subprocess.run([sys.executable, str(installed / "bin" / "hnclip-demo-data"), f"out={out}",
                        "per_class=1", "pairs=2", "size=32"],
                       cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and (out / "retrieval" / "pairs-00001.tar").is_file(), r.stderr[-2000:]
    # the planner composes the training config shipped inside the package
    r = subprocess.run([sys.executable, str(installed / "bin" / "hnclip-plan"), "plan.world_size=2",
                        "model=vit_b32_openai"], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "cheapest that fits" in r.stdout, r.stderr[-2000:]
    bad = subprocess.run([sys.executable, str(installed / "bin" / "hnclip-plan"), "plan.world_sise=2"],
                         cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "plan.world_size" in bad.stderr, bad.stderr[-2000:]
