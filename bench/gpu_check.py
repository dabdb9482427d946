"""The GPU check's steps, in the order bench/gpu_check.sh runs them; one JSON and a table.

    python bench/gpu_check.py --out DIR [--cpu-dry-run]

1. the CUDA-marked tests (tests/test_perf_cuda.py: losses on the device against the float64
   CPU reference, a bf16 step, a torch.compile step, a step under CUDA's sync debug mode, the
   tensor image transform on the device) and the host-read count (tests/test_perf_syncs.py);
2. LAION-like pair shards it generates: 256-px JPEGs with grain, LAION-length captions;
3. ViT-B/32 bf16, ours vs `open_clip_train`, batch 256, two rotated rounds
   (bench/bench_train.py), then the compute-only rates of ViT-B/32 and ViT-L/14 (batches in
   memory: what the loader has to keep up with);
4. the loader per core at 224 px from 256- and 384-px JPEGs beside open_clip's and the raw
   libjpeg-turbo decode rate (bench/bench_data.py), and so the CPU cores each model needs;
5. data.decode=cuda: a step's JPEGs decoded in one batch on the GPU, cropped and normalised
   there (train/data/device_decode.py), images/s on the device, beside the loader's remaining
   CPU work per core (headers and crop boxes). Its correctness is in step 1's tests (GPU
   against CPU decode, a damaged JPEG dropped and counted, a run with data.decode=cuda).

--cpu-dry-run runs every step on the CPU at toy size (hnclip-tiny for both models, a few
steps): tests/test_perf_gpu_check.py runs it in the test suite so the script cannot rot."""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# real: about 6 minutes on one H200 with 16 cores; dry: toy sizes on a CPU
SIZES = {
    "real": dict(model="ViT-B-32", model_l="ViT-L-14", batch=256, steps=30, warmup=8, rounds=2,
                 mem_steps=15, mem_warmup=5, workers=12, px=256, shards=8, per_shard=512,
                 loader_model="ViT-B-32", loader_px="256,384", loader_batches=20, loader_batch=64,
                 decode_batch=256, decode_rounds=5),
    "dry": dict(model="hnclip-tiny", model_l="hnclip-tiny", batch=8, steps=2, warmup=1, rounds=1,
                mem_steps=2, mem_warmup=1, workers=1, px=96, shards=8, per_shard=16,
                loader_model="hnclip-tiny", loader_px="96", loader_batches=2, loader_batch=8,
                decode_batch=8, decode_rounds=1),
}


def run(cmd, env=None, log=None):
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if log is not None:
        Path(log).write_text(r.stdout + r.stderr)
    return r, time.perf_counter() - t


def tests(out, dry):
    env = dict(os.environ, HNCLIP_TEST_DEVICE="cpu" if dry else "cuda", WANDB_MODE="disabled")
    files = ["tests/test_perf_cuda.py"] + ([] if dry else ["tests/test_perf_syncs.py"])
    r, secs = run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *files],
                  env, out / "tests.log")
    tail = (r.stdout + r.stderr).strip().splitlines()[-1:] or [""]
    return {"passed": r.returncode == 0, "summary": tail[0], "seconds": round(secs, 1),
            "log": str(out / "tests.log")}


def shards(out, z):
    from bench.bench_data import synthetic_shards
    root = out / "data"
    synthetic_shards(root / "pairs", z["px"], z["shards"], z["per_shard"], name="pairs-{:06d}")
    (root / "sets").mkdir(exist_ok=True)  # the pairs-only arms read no sets
    return root


def bench_train(out, data, z, arms, rounds, steps, warmup, tag):
    device = "cpu" if z is SIZES["dry"] else "cuda"
    cmd = [sys.executable, "bench/bench_train.py", "--device", device, "--data", str(data),
           "--captions", "short", "--pair-shards", str(z["shards"]), "--arms", arms,
           "--rounds", str(rounds), "--workers", str(z["workers"]),
           "--vit-model", z["model"], "--vitl-model", z["model_l"], "--vit-batch", str(z["batch"]),
           "--vit-steps", str(steps), "--vit-warmup", str(warmup), "--parts-reps", "3", "--decode", "tensor",
           "--out", str(out / f"{tag}.json"), "--markdown", str(out / f"{tag}.md")]
    r, secs = run(cmd, log=out / f"{tag}.log")
    if r.returncode != 0 or not (out / f"{tag}.json").exists():
        return {"failed": f"exit {r.returncode}, see {out / (tag + '.log')}", "seconds": round(secs, 1)}
    return dict(json.loads((out / f"{tag}.json").read_text()), seconds=round(secs, 1))


def loader(out, z, rates):
    spec = ",".join(f"{k}={v}" for k, v in rates.items() if v)
    cmd = [sys.executable, "bench/bench_data.py", "--model", z["loader_model"], "--synthetic", z["loader_px"],
           "--batches", str(z["loader_batches"]), "--batch", str(z["loader_batch"]), "--rounds", "1",
           "--replay-steps", "2", "--out", str(out / "loader.json")] + (["--gpu-rates", spec] if spec else [])
    r, secs = run(cmd, log=out / "loader.log")
    if r.returncode != 0:
        return {"failed": f"exit {r.returncode}, see {out / 'loader.log'}", "seconds": round(secs, 1)}
    return {"by_source_px": json.loads((out / "loader.json").read_text()), "seconds": round(secs, 1)}


def _grain_jpegs(px, n, seed=0):
    """n JPEGs of px x px with grain (photo-like entropy, as bench/bench_data.py's shards)."""
    import io

    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        low = rng.integers(0, 255, (px // 16, px // 16, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(low).resize((px, px), Image.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.integers(-12, 12, img.shape), 0, 255).astype(np.uint8)
        b = io.BytesIO()
        Image.fromarray(img).save(b, "JPEG", quality=90)
        out.append(b.getvalue())
    return out


def device_decode(z, dry):
    """data.decode=cuda at 224 px: the device's decode + crop + normalise rate over batches of
    a step's size, and the loader's remaining CPU work (header, crop box) per core."""
    import open_clip
    import torch

    from train.data import jpeg
    from train.data.decode import open_for
    from train.data.device_decode import DeviceDecoder
    device = "cpu" if dry else "cuda"
    t = open_clip.image_transform(224, is_train=True)
    pre, dec = jpeg.for_decode("cuda", t), DeviceDecoder(t, device)
    sync = (lambda: None) if dry else torch.cuda.synchronize
    rows = []
    try:
        for px in [int(p) for p in z["loader_px"].split(",")]:
            datas = _grain_jpegs(px, z["decode_batch"])
            t0 = time.perf_counter()
            items = [pre(open_for(d, route="defer"), d) for d in datas]
            loader_s = time.perf_counter() - t0
            counts = {}
            dec.decode(items, counts)  # warm-up: nvJPEG's handles, kernels
            sync()
            t0 = time.perf_counter()
            for _ in range(z["decode_rounds"]):
                torch.stack(dec.decode(items, counts))
            sync()
            secs = time.perf_counter() - t0
            rows.append({"source_px": px, "batch": len(items), "device": device,
                         "device_images_per_s": round(len(items) * z["decode_rounds"] / secs),
                         "loader_images_per_s_per_core": round(len(items) / loader_s),
                         "fallbacks_or_drops": sum(counts.values())})
    except Exception as e:  # noqa: BLE001 - reported in the JSON, the other steps still count
        return {"failed": f"{type(e).__name__}: {e}", "by_source_px": rows}
    return {"by_source_px": rows}


def arm(summary, name):
    return (summary.get("arms") or {}).get(name) or {}


def table(res) -> str:
    """The short table: one row per training arm, then the loader, then the flags."""
    sizes = "CPU dry run, toy sizes" if res["dry_run"] else "real sizes"
    lines = [f"GPU check on {res['device']} ({sizes}); {res['seconds']:.0f} s in all", "",
             "| arm | model | batch | samples/s | step ms | data share | peak GPU MiB | "
             "MFU (bf16 data sheet) | share of measured bf16 matmul |",
             "|---|---|---|---|---|---|---|---|---|"]
    for part in ("train", "compute_only"):
        for n, s in (res[part].get("arms") or {}).items():
            f = lambda k, spec, mul=1, s=s: "—" if s.get(k) is None else format(s[k] * mul, spec)
            lines.append(f"| {n} | {s.get('model')} | {s.get('batch')} | {f('samples_per_s', '.0f')} | "
                         f"{f('step_s', '.1f', 1e3)} | {f('data_share', '.1f', 100)}% | "
                         f"{f('peak_gpu_mib', '.0f')} | "
                         f"{f('mfu_nominal_bf16', '.1f', 100)}% | {f('peak_share', '.1f', 100)}% |")
    for k, v in (res["train"].get("ratios") or {}).items():
        lines.append(f"- {k}: **{v:.2f}**")
    for row in (res["loader"].get("by_source_px") or []):
        lines.append(f"- loader, 224 px from {row['source_px']} px, per core: "
                     f"ours (pil) {row['ours_samples_per_s_per_worker']}, "
                     f"ours (tensor) {row['ours_tensor_samples_per_s_per_worker']}, open_clip "
                     f"{row['open_clip_samples_per_s_per_worker']}, libjpeg-turbo decode limit "
                     f"{row['decode_limit_jpegs_per_s']} images/s; tensor / open_clip "
                     f"**{row['ratio_ours_tensor_over_open_clip']:.2f}**; "
                     f"cores per GPU {row.get('cores_per_gpu', '—')}")
    for row in (res.get("device_decode", {}).get("by_source_px") or []):
        lines.append(f"- data.decode=cuda, 224 px from {row['source_px']} px: {row['device_images_per_s']} "
                     f"images/s on the {row['device']} (batches of {row['batch']}); the loader's part "
                     f"{row['loader_images_per_s_per_core']} images/s per core")
    tested = res["tests"]
    lines.append(f"- CUDA-marked tests: {'passed' if tested['passed'] else 'FAILED'} ({tested['summary']})")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="gpu_check_out")
    ap.add_argument("--cpu-dry-run", action="store_true")
    a = ap.parse_args(argv)
    import torch
    dry = a.cpu_dry_run
    if not dry and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible (use --cpu-dry-run to exercise the script on a CPU)")
    z = SIZES["dry" if dry else "real"]
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = {"dry_run": dry, "device": "cpu" if dry else torch.cuda.get_device_name(),
           "torch": torch.__version__, "cpus": os.cpu_count(), "sizes": z}
    print("[gpu_check] tests", flush=True)
    res["tests"] = tests(out, dry)
    print(f"[gpu_check] tests: {res['tests']['summary']}; shards", flush=True)
    data = shards(out, z)
    print("[gpu_check] ours vs open_clip_train", flush=True)
    if dry:
        # one benchmark process for all arms and no second model (the same code paths, less
        # start-up): the dry run has to fit the test suite's budget
        both = bench_train(out, data, z, "vit_ours,vit_open_clip,vit_ours_mem", 1, z["steps"], z["warmup"],
                           "train")
        arms = both.get("arms") or {}
        res["train"] = dict(both, arms={k: v for k, v in arms.items() if not k.endswith("_mem")})
        res["compute_only"] = {"arms": {k: v for k, v in arms.items() if k.endswith("_mem")}}
        if "failed" in both:
            res["compute_only"]["failed"] = both["failed"]
    else:
        res["train"] = bench_train(out, data, z, "vit_ours,vit_open_clip", z["rounds"], z["steps"],
                                   z["warmup"], "train")
        print("[gpu_check] compute-only rates", flush=True)
        res["compute_only"] = bench_train(out, data, z, "vit_ours_mem,vitl_ours_mem", 1, z["mem_steps"],
                                          z["mem_warmup"], "compute_only")
    rates = {name: arm(res["compute_only"], n).get("samples_per_s")
             for name, n in (("vit_b32", "vit_ours_mem"), ("vit_l14", "vitl_ours_mem"))}
    print("[gpu_check] loader", flush=True)
    res["loader"] = loader(out, z, rates)
    print("[gpu_check] data.decode=cuda", flush=True)
    res["device_decode"] = device_decode(z, dry)
    res["seconds"] = time.perf_counter() - t0
    text = table(res)
    (out / "gpu_check.json").write_text(json.dumps(res, indent=1, default=str))
    (out / "gpu_check.md").write_text(text + "\n")
    print("\n" + text, flush=True)
    failed = [k for k in ("train", "compute_only", "loader", "device_decode") if "failed" in res[k]]
    if failed or not res["tests"]["passed"]:
        names = failed + ([] if res["tests"]["passed"] else ["tests"])
        sys.exit(f"gpu_check: failed: {', '.join(names)} (logs in {out})")
    return res


if __name__ == "__main__":
    main()
