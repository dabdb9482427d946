"""Assertions more than one test file makes."""
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def assert_same_gradients(reference, other, rtol=1e-10, atol=1e-12):
    """Every parameter gradient of `other` equals `reference`'s (the same architecture, in the
    same parameter order), named in the failure."""
    for (name, p), q in zip(reference.named_parameters(), other.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=rtol, atol=atol, msg=name)


def assert_misspelled_key_exits_2(command, prog, named, nearest, never_made):
    """`python <command...>` exits 2 with '<prog>: unknown config key <named>' and `nearest`
    among the nearest valid keys, before making `never_made` (the run directory)."""
    r = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"{prog}: unknown config key '{named}'" in r.stderr
    assert nearest in r.stderr.split("nearest valid keys:")[1]
    assert not Path(never_made).exists()
