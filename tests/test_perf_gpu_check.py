"""bench/gpu_check.sh cannot rot: its --cpu-dry-run runs every step of the GPU check (the
CUDA-marked tests, shard generation, ours vs open_clip_train, the compute-only rate, the
loader against open_clip and the decode limit, the data.decode=cuda rate) on the CPU at toy
size, and writes the JSON and the table a GPU run writes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def test_nominal_peaks_are_looked_up_by_device_name():
    from bench.measure import nominal_bf16_peak
    assert nominal_bf16_peak("NVIDIA H200") == 989.4e12
    assert nominal_bf16_peak("NVIDIA H100 PCIe") == 756.0e12
    assert nominal_bf16_peak("NVIDIA A100-SXM4-80GB") == 312.0e12
    assert nominal_bf16_peak("a CPU") is None


@pytest.mark.slow
def test_cpu_dry_run_runs_every_step_and_reports(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    r = subprocess.run(["bash", "bench/gpu_check.sh", "--cpu-dry-run", "--out", str(tmp_path)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert res["dry_run"] and res["tests"]["passed"] and "passed" in res["tests"]["summary"]
    arms = res["train"]["arms"]
    assert set(arms) == {"vit_ours", "vit_open_clip"} and all(a["samples_per_s"] > 0 for a in arms.values())
    assert arms["vit_ours"]["flops_per_step"] > 0
    assert set(arms["vit_ours"]["parts"]) == {"encode_pairs", "encode_sets", "loss", "backward", "optimizer"}
    assert "vit_ours / vit_open_clip (target >= 1.25)" in res["train"]["ratios"]
    assert res["compute_only"]["arms"]["vit_ours_mem"]["samples_per_s"] > 0
    row = res["loader"]["by_source_px"][0]
    assert row["decode_limit_jpegs_per_s"] > 0 and row["ours_tensor_samples_per_s_per_worker"] > 0
    assert "vit_b32" in row["cores_per_gpu"]
    dev = res["device_decode"]["by_source_px"][0]
    assert dev["device_images_per_s"] > 0 and dev["loader_images_per_s_per_core"] > 0
    assert dev["fallbacks_or_drops"] == 0
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| vit_ours |" in table and "libjpeg-turbo decode limit" in table
    assert "data.decode=cuda, 224 px from" in table
