"""Untrusted and damaged checkpoints: a crafted pickle never runs, a checkpoint that fails its
manifest (truncated trainer.pt or RNG file, flipped bytes) is reported and the previous one
taken, and the RNG states round-trip through weights_only=True."""
import json
import os
import random

import numpy as np
import pytest
import torch

from train import checkpoint as ckpt


def state(step):
    return {"step": step, "samples_seen": 10 * step, "model": {"w": torch.full((64, 64), float(step))}}


class Payload:
    """What an attacker puts in a trainer.pt: unpickling it runs a command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def craft(path, marker):
    """Replace path's trainer.pt by a malicious pickle, with a manifest that matches it (an
    attacker can compute checksums too: the manifest is about damage, weights_only about trust)."""
    f = path / ckpt.TRAINER_FILE
    with open(f, "wb") as fh:
        torch.save({"step": 4, "evil": Payload(marker)}, fh, _use_new_zipfile_serialization=True)
    files = json.loads((path / ckpt.MANIFEST_FILE).read_text())["files"]
    files[ckpt.TRAINER_FILE] = ckpt._hash_file(f)
    (path / ckpt.MANIFEST_FILE).write_text(json.dumps({"format": 1, "files": files}))


def test_crafted_pickle_does_not_execute(tmp_path, capsys):
    marker = tmp_path / "pwned"
    ckpt.save(tmp_path, 2, state(2), keep_last=3)
    bad = ckpt.save(tmp_path, 4, state(4), keep_last=3)
    craft(bad, marker)
    with pytest.raises(ckpt.CheckpointError, match="weights_only=True"):
        ckpt.load(bad)
    assert not marker.exists()
    # on resume: reported, set aside, and the previous checkpoint is the resume point
    assert ckpt.resume_point(tmp_path).name == "step-0000002"
    assert not marker.exists()
    assert (tmp_path / "checkpoints" / "step-0000004.damaged").is_dir()
    assert "step-0000004 is damaged" in capsys.readouterr().out
    # the same file through a plain unpickler does run the command: the test can fail
    with open(tmp_path / "checkpoints" / "step-0000004.damaged" / ckpt.TRAINER_FILE, "rb") as fh:
        torch.load(fh, weights_only=False)
    assert marker.exists()


def truncate(f, keep=0.5):
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * keep)])


def flip(f, offset=-200):
    data = bytearray(f.read_bytes())
    data[offset] ^= 0xFF
    f.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, what", [
    (lambda p: truncate(p / "trainer.pt"), "bytes, the manifest says"),
    (lambda p: truncate(p / "rng-rank0.pt"), "bytes, the manifest says"),
    (lambda p: flip(p / "trainer.pt", len((p / "trainer.pt").read_bytes()) // 2), "SHA-256"),
    (lambda p: (p / "rng-rank0.pt").unlink(), "missing"),
])
def test_damaged_latest_falls_back_to_previous(tmp_path, capsys, damage, what):
    ckpt.save(tmp_path, 2, state(2), keep_last=3)
    damage(ckpt.save(tmp_path, 4, state(4), keep_last=3))
    assert ckpt.verify(ckpt.final_dir(tmp_path, 2)) == ""
    chosen = ckpt.resume_point(tmp_path)
    assert chosen.name == "step-0000002"
    assert torch.equal(ckpt.load(chosen)["model"]["w"], state(2)["model"]["w"])
    out = capsys.readouterr().out
    assert "step-0000004 is damaged" in out and what in out, out
    assert [p.name for p in ckpt.checkpoints(tmp_path)] == ["step-0000002"]


def test_flipped_bytes_in_the_weights_are_caught(tmp_path):
    """The silent case: a bit flip inside the tensor data loads fine with torch."""
    p = ckpt.save(tmp_path, 4, state(4), keep_last=3)
    f = p / "trainer.pt"
    data = f.read_bytes()
    at = data.index(np.float32(4.0).tobytes() * 8)  # inside the 64x64 block of 4.0
    flip(f, at + 3)
    assert not torch.equal(torch.load(f, weights_only=True)["model"]["w"], state(4)["model"]["w"])
    assert "SHA-256" in ckpt.verify(p)


def test_no_usable_checkpoint_stops_instead_of_starting_over(tmp_path):
    truncate(ckpt.save(tmp_path, 2, state(2), keep_last=3) / "trainer.pt")
    with pytest.raises(ckpt.CheckpointError, match="no usable checkpoint"):
        ckpt.resume_point(tmp_path)
    assert ckpt.resume_point(tmp_path / "elsewhere") is None  # no checkpoints at all: a fresh run


def test_rng_states_round_trip_under_weights_only(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # a cached gaussian is part of numpy's state
    p = ckpt.save(tmp_path, 1, state(1), keep_last=1)
    want = (random.random(), np.random.randn(), torch.rand(1))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt.set_rng_state(ckpt.load_rng(p, 0))
    assert (random.random(), np.random.randn()) == want[:2] and torch.equal(torch.rand(1), want[2])


def test_trim_metrics_cuts_the_tail_in_place(tmp_path):
    """Rows after the resume point are the file's tail: cut in place, no second copy of the
    file, so a resume on a full disk still works."""
    f = tmp_path / "metrics.jsonl"
    f.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(1, 9)) + '{"step": 9, "lo')
    inode = f.stat().st_ino
    assert ckpt.trim_metrics_after(tmp_path, 6) == 3
    assert f.stat().st_ino == inode
    assert [json.loads(line)["step"] for line in f.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
