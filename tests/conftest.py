"""Shared fixtures: the real Hydra config composed with CPU-and-tiny overrides, and the
embedded default data generated once per test session into a temp dir."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def compose(overrides=(), config_name="config"):
    from hydra import compose as hcompose, initialize_config_dir
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hcompose(config_name=config_name, overrides=list(overrides))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A small copy of the embedded default data (same generator, fewer samples)."""
    out = tmp_path_factory.mktemp("data") / "default"
    subprocess.run([sys.executable, "-m", "hn_data.make_default", f"out={out}",
                    "pair_shards=8", "pairs_per_shard=32", "set_shards=8",
                    "sets_per_subset=8", "heldout_per_subset=4"],
                   check=True, cwd=ROOT, capture_output=True)
    return out
