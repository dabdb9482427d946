"""Checkpoints: a crash while saving never corrupts the latest; the last M are kept; resumed
metrics hold each step once."""
import json

import pytest
import torch

from train import checkpoint as ckpt


def state(step):
    return {"step": step, "samples_seen": 10 * step, "model": {"w": torch.full((64, 64), float(step))}}


def test_crash_mid_write_keeps_latest_intact(tmp_path, monkeypatch):
    ckpt.save(tmp_path, 2, state(2), keep_last=3)
    real_save = torch.save

    def crashing_save(obj, f, *a, **k):
        if isinstance(obj, dict) and obj.get("step") == 4:
            f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the disk, then we die
            raise OSError("injected: disk vanished mid-write")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(ckpt.torch, "save", crashing_save)
    with pytest.raises(OSError, match="injected"):
        ckpt.save(tmp_path, 4, state(4), keep_last=3)
    assert not (tmp_path / "checkpoints" / ".tmp-step-0000004").exists()  # the wreck is cleared
    latest = ckpt.latest(tmp_path)
    assert latest.name == "step-0000002"
    loaded = ckpt.load(latest)
    assert loaded["step"] == 2 and torch.equal(loaded["model"]["w"], state(2)["model"]["w"])
    assert ckpt.load_rng(latest, 0) is not None and ckpt.load_rng(latest, 1) is None

    monkeypatch.setattr(ckpt.torch, "save", real_save)
    ckpt.save(tmp_path, 4, state(4), keep_last=3)
    assert ckpt.latest(tmp_path).name == "step-0000004"
    assert not (tmp_path / "checkpoints" / ".tmp-step-0000004").exists()


def test_leftovers_of_a_killed_save_are_removed(tmp_path):
    """A SIGKILL mid-save leaves .tmp-step-N (possibly gigabytes); the next start removes it."""
    ckpt.save(tmp_path, 2, state(2), keep_last=3)
    wreck = tmp_path / "checkpoints" / ".tmp-step-0000004"
    wreck.mkdir()
    (wreck / "trainer.pt").write_bytes(b"PK\x03\x04 half")
    old = tmp_path / "checkpoints" / ".old-step-0000002"
    old.mkdir()
    removed = sorted(p.name for p in ckpt.remove_leftovers(tmp_path))
    assert removed == [".old-step-0000002", ".tmp-step-0000004"]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-0000002"]


def test_directory_without_trainer_file_is_not_a_checkpoint(tmp_path):
    ckpt.save(tmp_path, 3, state(3), keep_last=2)
    (tmp_path / "checkpoints" / "step-0000009").mkdir()  # e.g. copied by hand, incomplete
    assert ckpt.latest(tmp_path).name == "step-0000003"


def test_keep_last_and_same_step_twice(tmp_path):
    for s in (2, 4, 6, 8):
        ckpt.save(tmp_path, s, state(s), keep_last=2)
    assert [p.name for p in ckpt.checkpoints(tmp_path)] == ["step-0000006", "step-0000008"]
    ckpt.save(tmp_path, 8, state(8), keep_last=2)  # a signal right after a periodic save
    assert [p.name for p in ckpt.checkpoints(tmp_path)] == ["step-0000006", "step-0000008"]
    assert ckpt.load(ckpt.latest(tmp_path))["samples_seen"] == 80
    assert not list((tmp_path / "checkpoints").glob(".old-*"))


def test_trim_metrics_after_resume_point(tmp_path):
    lines = [json.dumps({"step": s, "loss/total": 1.0 / s}) for s in range(1, 9)]
    lines.insert(6, json.dumps({"step": 6, "eval/spec/mean/i2t": 50.0}))
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 9, "loss/to')
    assert ckpt.trim_metrics_after(tmp_path, 6) == 3  # steps 7, 8 and the half-written line
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6, 6]
