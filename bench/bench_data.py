"""Data-loading throughput: our pair stream vs open_clip's own webdataset pipeline
(open_clip_train.data.get_wds_dataset), on the same shards, with the same preprocessing and
tokenizer, in one run, interleaved (A B A B ...) so machine load hits both alike.

    python bench/bench_data.py [--shards 'data/default/pairs/pairs-{000000..000007}.tar']
                               [--model hnclip-tiny] [--workers 1] [--batches 40] [--rounds 3]
    python bench/bench_data.py --metrics outputs/default/metrics.jsonl   # data time share
    python bench/bench_data.py --model ViT-B-32 --synthetic 256,384      # 224 px from img2dataset sizes

Samples/s per worker counts decode + preprocess + tokenize + batching, after one warm-up
batch (shuffle-buffer fill, worker start-up) per loader, one torch thread per worker. Arms:
ours (data.decode=pil: the model's PIL transform), ours_tensor (data.decode=tensor:
train/data/jpeg.py), open_clip (open_clip_train.data.get_wds_dataset), and the limit: the
raw libjpeg-turbo decode rate of the same JPEGs (torchvision.io.decode_jpeg, one thread, no
resize, no tar reading). Also reports how fast a resumed run replays consumed steps (ours
skips preprocessing/tokenization while replaying). With --gpu-rates it turns the per-worker
rates into CPU cores a GPU needs."""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def decode_limit(urls_str, n=256):
    """JPEGs/s of torchvision.io.decode_jpeg (libjpeg-turbo) alone on the shards' images."""
    import tarfile

    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    from train.data import shards as S
    blobs = []
    for url in S.expand(urls_str):
        with tarfile.open(url) as t:
            blobs += [t.extractfile(m).read() for m in t.getmembers() if m.name.endswith(".jpg")]
        if len(blobs) >= n:
            break
    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs[:n]]
    decode_jpeg(data[0], mode=ImageReadMode.RGB)
    t0 = time.perf_counter()
    for d in data:
        decode_jpeg(d, mode=ImageReadMode.RGB)
    return len(data) / (time.perf_counter() - t0)


def ours(urls_str, preprocess, tokenizer, batch, workers, start_step=0):
    from train.data import shards as S
    from train.data.steps import StepSpec, StreamSpec, make_loader
    spec = StepSpec(StreamSpec([S.expand(urls_str)], [1.0], resampled=True, shuffle_buffer=256),
                    pairs_per_step=batch, set_items_per_step=0, seed=0)
    it = iter(make_loader(spec, preprocess, tokenizer, workers, start_step))
    return lambda: next(it)["pairs"]["images"].shape[0]


def open_clip_wds(urls_str, preprocess, tokenizer, batch, workers):
    from open_clip_train.data import get_wds_dataset
    args = SimpleNamespace(train_data=urls_str, val_data=None, dataset_resampled=True,
                           train_num_samples=10 ** 7, train_data_upsampling_factors=None,
                           batch_size=batch, workers=workers, world_size=1, seed=0)
    it = iter(get_wds_dataset(args, preprocess, is_train=True, epoch=0, tokenizer=tokenizer).dataloader)
    return lambda: next(it)[0].shape[0]


def timed(make, batches):
    """-> samples/s over `batches` batches after one warm-up batch."""
    nxt = make()
    nxt()
    t0, n = time.perf_counter(), 0
    for _ in range(batches):
        n += nxt()
    return n / (time.perf_counter() - t0)


def synthetic_shards(folder, size, n_shards=4, per_shard=128, name="{:05d}"):
    """LAION-like shards of size x size JPEGs -> brace URL: smooth random fields with grain, so
    they weigh what photos do at that size (about 0.3 bytes a pixel, not the few KB of a
    smooth field), and LAION-length captions (bench/laion_captions.py)."""
    import numpy as np
    from PIL import Image

    from bench.laion_captions import caption, word_counts
    from hn_data.set_format import TarWriter, write_pair, write_stats
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for s in range(n_shards):
        path = folder / (name.format(s) + ".tar")
        if path.exists():
            continue
        w = TarWriter(path)
        for i, n_words in enumerate(word_counts(per_shard, rng)):
            low = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)
            field = np.asarray(Image.fromarray(low).resize((size, size), Image.BICUBIC), dtype=np.float32)
            grain = rng.normal(0, 10, (size, size, 1)).astype(np.float32)
            img = Image.fromarray(np.clip(field + grain, 0, 255).astype(np.uint8))
            write_pair(w, f"{s:05d}{i:04d}", img, caption(int(n_words), rng))
        w.close()
        write_stats(path, per_shard)
    first, last = name.format(0), name.format(n_shards - 1)
    stem = first.rstrip("0123456789")
    return f"{folder}/{stem}{{{first[len(stem):]}..{last[len(stem):]}}}.tar"


def throughput(args):
    import open_clip
    import torch
    torch.set_num_threads(1)  # one core per loader process, as in a real data worker
    open_clip.add_model_config(ROOT / "train" / "model_configs")
    _, preprocess, _ = open_clip.create_model_and_transforms(args.model)  # the train transform
    tokenizer = open_clip.get_tokenizer(args.model)
    from train.data.jpeg import for_decode
    fast = for_decode("tensor", preprocess)
    per = max(1, args.workers)
    res = {"ours": [], "ours_tensor": [], "open_clip": [], "decode_limit": []}
    for r in range(args.rounds):
        res["ours"].append(timed(lambda: ours(args.shards, preprocess, tokenizer, args.batch, args.workers),
                                 args.batches) / per)
        res["ours_tensor"].append(timed(lambda: ours(args.shards, fast, tokenizer, args.batch, args.workers),
                                        args.batches) / per)
        res["open_clip"].append(timed(lambda: open_clip_wds(args.shards, preprocess, tokenizer, args.batch,
                                                            args.workers),
                                      args.batches) / per)
        res["decode_limit"].append(decode_limit(args.shards))
        rates = "  ".join(f"{k} {v[-1]:.0f}" for k, v in res.items())
        print(f"round {r}: " + rates + " samples/s/worker", flush=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    # resume replay: time to the first batch of a loader resuming at step R, minus a fresh one's
    fresh = _first_batch(lambda: ours(args.shards, preprocess, tokenizer, args.batch, 0))
    resumed = _first_batch(lambda: ours(args.shards, preprocess, tokenizer, args.batch, 0, args.replay_steps))
    replay = args.replay_steps * args.batch / max(resumed - fresh, 1e-9)
    out = {"shards": args.shards, "model": args.model, "batch": args.batch, "workers": args.workers,
           "rounds": args.rounds, "batches": args.batches,
           "ours_samples_per_s_per_worker": round(med["ours"]),
           "ours_tensor_samples_per_s_per_worker": round(med["ours_tensor"]),
           "open_clip_samples_per_s_per_worker": round(med["open_clip"]),
           "decode_limit_jpegs_per_s": round(med["decode_limit"]),
           "ratio_ours_over_open_clip": round(med["ours"] / med["open_clip"], 3),
           "ratio_ours_tensor_over_open_clip": round(med["ours_tensor"] / med["open_clip"], 3),
           "resume_replay_samples_per_s": round(replay)}
    if args.gpu_rates:
        # a GPU at R samples/s needs R / (per-worker rate) loader cores
        arms = ("ours", "ours_tensor", "open_clip")
        out["cores_per_gpu"] = {name: {arm: round(rate / med[arm], 1) for arm in arms}
                                for name, rate in gpu_rates(args.gpu_rates).items()}
    print(json.dumps(out, indent=1))
    return out


def gpu_rates(spec: str) -> dict:
    """'ViT-B-32=5000,ViT-L-14=800' -> {name: samples/s}."""
    out = {}
    for part in spec.split(","):
        name, _, rate = part.partition("=")
        if not rate:
            raise SystemExit(f"--gpu-rates: '{part}' is not MODEL=SAMPLES_PER_S")
        out[name] = float(rate)
    return out


def _first_batch(make):
    t0 = time.perf_counter()
    make()()
    return time.perf_counter() - t0


def data_share(path, skip=5):
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "data_time" in r and "step_time" in r]
    if len(rows) <= skip:
        raise SystemExit(f"{path}: fewer than {skip + 1} steps with data_time/step_time")
    steady = rows[skip:]  # the first steps include worker start-up and shuffle-buffer fill
    d = sum(r["data_time"] for r in steady)
    s = sum(r["step_time"] for r in steady)
    out = {"metrics": str(path), "steps": len(steady), "skipped_first_steps": skip,
           "data_time_share": round(d / s, 4),
           "median_data_time_ms": round(1000 * statistics.median(r["data_time"] for r in steady), 2),
           "median_step_time_ms": round(1000 * statistics.median(r["step_time"] for r in steady), 1),
           "first_steps_data_time_s": [round(r["data_time"], 3) for r in rows[:skip]]}
    print(json.dumps(out, indent=1))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", default="data/default/pairs/pairs-{000000..000007}.tar")
    ap.add_argument("--model", default="hnclip-tiny")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--replay-steps", type=int, default=100)
    ap.add_argument("--synthetic", default="", metavar="PX[,PX]",
                    help="measure on generated PX-pixel JPEG shards (in /tmp) instead of --shards; "
                         "several sizes: one measurement each")
    ap.add_argument("--gpu-rates", default="", metavar="MODEL=RATE,...",
                    help="training samples/s of one GPU per model (bench/gpu_check.sh measures them): "
                         "report the loader cores each needs")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--metrics", help="a training run's metrics.jsonl: report the data time share instead")
    args = ap.parse_args(argv)
    if args.metrics:
        return data_share(args.metrics)
    if not args.synthetic:
        results = [throughput(args)]
    else:
        results = []
        for px in (int(x) for x in args.synthetic.split(",")):
            args.shards = synthetic_shards(f"/tmp/hnclip_bench_photo_shards_{px}", px)
            results.append(dict(throughput(args), source_px=px))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
