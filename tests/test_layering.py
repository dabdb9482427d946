"""The house's structure rules, checked on the source: hn_data (the data layer) imports nothing
from train, and importing a module changes no process-wide warning filter."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_packages(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_hn_data_imports_nothing_from_train():
    bad = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "hn_data").rglob("*.py"))
           if "train" in set(_imported_packages(p))]
    assert bad == []


def test_importing_distributed_keeps_the_global_warning_filters():
    # torch and numpy install their own filters on import: take the snapshot after them
    code = ("import warnings, torch, torch.distributed.nn; before = list(warnings.filters); "
            "import train.distributed; print(warnings.filters == before)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True", out.stderr
