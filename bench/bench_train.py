"""Training throughput, side by side with open_clip's own trainer, in one run.

    .venv/bin/python bench/bench_train.py [--rounds 2] [--vit-b32] [--captions laion|short] [--markdown FILE]

Pair captions have LAION's length distribution by default (bench/laion_captions.py: median
~10 words, 2.5 % over 50 words, so most steps hold a caption that fills the context);
`--captions short` keeps the embedded default's ~10-token captions, which flatter cutting the
text tower to the step's longest caption.

Arms, each in its own process, on the same model, shards, batch size, precision and workers:
  ours_pairs      our trainer, pairs only                     (real data loader)
  ours_sets       our trainer, pairs + candidate sets         (real data loader)
  ours_pairs_mem  ours, pairs only, batches already in memory (the compute-only bound)
  ours_sets_mem   ours, pairs + sets, in memory
  open_clip       `open_clip_train.main` (bench/run_open_clip_train.py), pairs only
  with --vit-b32: vit_ours / vit_open_clip, ViT-B/32 at 224 px, bf16 autocast vs amp_bf16.
  by name only: ours_pairs_nice0 (ours_pairs with data.worker_nice=0: the workers at the
  trainer's priority, as open_clip's are), vit_ours_mem, vitl_ours_mem.
The arms run one after another, `--rounds` times in rotated order; every ratio is taken
within a round (arms minutes apart see similar machine load) and the median over rounds is
reported. The matmul peak is measured in the same run."""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench import open_clip_arm  # noqa: E402
from bench.measure import loss_memory, matmul_peak, run_with_rusage, steady_state  # noqa: E402

TINY_ARMS = ("ours_pairs", "ours_sets", "ours_pairs_mem", "ours_sets_mem", "open_clip")
VIT_ARMS = ("vit_ours", "vit_open_clip")
# compute-only rates of the big models (what a loader must keep up with): only when named
EXTRA_ARMS = ("vit_ours_mem", "vitl_ours_mem", "ours_pairs_nice0")


def arm_params(name, a, run_dir):
    vit = name.startswith("vit")
    big = name.startswith("vitl_")
    p = {"model": a.vitl_model if big else a.vit_model if vit else a.model,
         "precision": "bf16" if vit else a.precision,
         "pairs": (a.vitl_batch or a.vit_batch // 2) if big else a.vit_batch if vit else a.batch,
         "set_items": a.set_items if "sets" in name else 0,
         "workers": a.workers, "data_root": a.data, "run_dir": str(run_dir), "decode": a.decode,
         "mode": "memory" if name.endswith("_mem") else "data",
         "parts_reps": 0 if name.endswith("_mem") else a.parts_reps, "device": a.device}
    if name.endswith("_nice0"):
        p["worker_nice"] = 0
    warmup, steps = (a.vit_warmup, a.vit_steps) if vit else (a.warmup, a.steps)
    p.update(warmup=warmup, steps=warmup + steps)
    p["pairs_urls"] = f"{a.data}/pairs/pairs-{{000000..{a.pair_shards - 1:06d}}}.tar"
    return p


def run_arm(name, a, work):
    run_dir = work / f"{name}_{time.monotonic_ns()}"
    p = arm_params(name, a, run_dir)
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="1")
    if a.device == "cpu" and torch.cuda.is_available():
        env["CUDA_VISIBLE_DEVICES"] = ""  # both trainers on the CPU, as asked
    if a.threads:
        # torch reads this at start-up in every arm alike (open_clip's trainer included)
        env["OMP_NUM_THREADS"] = str(a.threads)
    load_before = os.getloadavg()[0]
    if name.endswith("open_clip"):
        from omegaconf import OmegaConf

        from train.config import OptimConfig
        optim = OmegaConf.merge(OmegaConf.structured(OptimConfig),
                                OmegaConf.load(ROOT / "conf/optim/default.yaml"))
        cmd = open_clip_arm.argv(p, optim, run_dir, "oc")
        code, text, rss, wall = run_with_rusage(cmd, env, ROOT, log_path=work / f"{name}.log")
        if code != 0:
            raise RuntimeError(f"{name} exited with {code}; log: {work / (name + '.log')}")
        st, dt = open_clip_arm.parse_log(text)
        out = steady_state(st, dt, p["pairs"], p["warmup"])
        out.update(images_per_step=p["pairs"], captions_per_step=p["pairs"])
    else:
        result = run_dir.with_suffix(".json")
        cmd = [sys.executable, str(ROOT / "bench/arm_ours.py"), json.dumps(p), str(result)]
        code, _, rss, wall = run_with_rusage(cmd, env, ROOT, log_path=work / f"{name}.log")
        if code != 0:
            raise RuntimeError(f"{name} exited with {code}; log: {work / (name + '.log')}")
        out = json.loads(result.read_text())
    out.update(peak_rss_mib=rss, wall_s=wall, load_before=load_before, load_after=os.getloadavg()[0],
               precision=p["precision"], model=p["model"], batch=p["pairs"], set_items=p["set_items"])
    return out


def median_of(rounds, name, key):
    vals = [r[name][key] for r in rounds if name in r and key in r[name]]
    return statistics.median(vals) if vals else None


def ratio(rounds, num, den, key="samples_per_s"):
    vals = [r[num][key] / r[den][key] for r in rounds if num in r and den in r]
    return statistics.median(vals) if vals else None


def per_item_ratio(rounds, sets, pairs):
    """(step time per encoded image) with candidate sets / without."""
    per_image = lambda arm: arm["step_s"] / arm["images_per_step"]
    vals = [per_image(r[sets]) / per_image(r[pairs]) for r in rounds if sets in r and pairs in r]
    return statistics.median(vals) if vals else None


def summarize(rounds, peaks, a):
    names = [n for n in TINY_ARMS + VIT_ARMS + EXTRA_ARMS if any(n in r for r in rounds)]
    arms = {}
    for n in names:
        last = next(r[n] for r in reversed(rounds) if n in r)
        s = {k: median_of(rounds, n, k) for k in ("samples_per_s", "step_s", "data_share")}
        s.update({k: last.get(k) for k in ("model", "precision", "batch", "set_items", "images_per_step",
                                           "captions_per_step", "parts", "optimizer", "flops_per_step",
                                           "flops_per_step_full_text", "text_tokens", "device")})
        s["peak_rss_mib"] = max(r[n]["peak_rss_mib"] for r in rounds if n in r)
        gpu = [r[n]["peak_gpu_mib"] for r in rounds if n in r and "peak_gpu_mib" in r[n]]
        if gpu:
            s["peak_gpu_mib"] = max(gpu)
        arms[n] = s
    # open_clip runs the same model on the same batch: it does the same FLOPs per step as ours
    for oc, ours in (("open_clip", "ours_pairs"), ("vit_open_clip", "vit_ours")):
        if oc in arms and ours in arms:
            arms[oc]["flops_per_step"] = (arms[ours].get("flops_per_step_full_text")
                                          or arms[ours]["flops_per_step"])
    for s in arms.values():
        if s.get("flops_per_step") and s["step_s"]:
            peak = peaks["bf16" if s["precision"] == "bf16" else "fp32"]
            s["flops_per_s"] = s["flops_per_step"] / s["step_s"]
            s["peak_share"] = s["flops_per_s"] / peak
            if peaks.get("nominal_bf16"):
                s["mfu_nominal_bf16"] = s["flops_per_s"] / peaks["nominal_bf16"]
    ratios = {
        "ours_pairs / open_clip (target >= 1.25)": ratio(rounds, "ours_pairs", "open_clip"),
        "ours_pairs / compute-only bound (target >= 0.75)": ratio(rounds, "ours_pairs", "ours_pairs_mem"),
        "ours_pairs_nice0 / open_clip": ratio(rounds, "ours_pairs_nice0", "open_clip"),
        "ours_sets / compute-only bound": ratio(rounds, "ours_sets", "ours_sets_mem"),
        "vit_ours / vit_open_clip (target >= 1.25)": ratio(rounds, "vit_ours", "vit_open_clip"),
        "per-item cost, sets / pairs, real data (target <= 1.05)":
            per_item_ratio(rounds, "ours_sets", "ours_pairs"),
        "per-item cost, sets / pairs, compute-only":
            per_item_ratio(rounds, "ours_sets_mem", "ours_pairs_mem"),
    }
    # the loss's memory per rank: fixed local batch, global batch doubled by doubling ranks
    lm = {w: loss_memory(a.batch, a.set_items, w) for w in (1, 2, 4)}
    one_rank = {b: loss_memory(b, a.set_items, 1) for b in (a.batch, 2 * a.batch)}
    return {"arms": arms, "ratios": {k: v for k, v in ratios.items() if v is not None},
            "loss_memory_per_rank": {"local": [a.batch, a.set_items],
                                     "by_world": {str(w): v for w, v in lm.items()},
                                     "one_rank_by_batch": {str(b): v for b, v in one_rank.items()}}}


def device_peaks(device):
    """Measured matmul peaks (fp32, bf16) on the benchmark's device, and on a GPU its
    data-sheet bf16 peak (MFU is quoted against that)."""
    from bench.measure import nominal_bf16_peak
    peaks = {"fp32": matmul_peak(torch.float32, device=device),
             "bf16": matmul_peak(torch.bfloat16, device=device)}
    if device == "cuda":
        peaks["device_name"] = torch.cuda.get_device_name()
        peaks["nominal_bf16"] = nominal_bf16_peak(peaks["device_name"])
    return peaks


def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def table(summary):
    head = ("| arm | model, precision | batch (pairs+set items) | samples/s | step ms | data share | "
            "encode pairs | encode sets | loss | backward | optimizer (ms) | peak RSS MiB | "
            "FLOPs/s share of peak |")
    lines = [head, "|" + "---|" * 13]
    for n, s in summary["arms"].items():
        parts = s.get("parts") or {}
        ms = lambda k, parts=parts: fmt(parts[k] * 1e3, ".1f") if k in parts else "—"
        lines.append(
            f"| {n} | {s['model']}, {s['precision']} | {s['batch']}+{s['set_items']} | "
            f"{fmt(s['samples_per_s'], '.1f')} | {fmt(s['step_s'] * 1e3, '.0f')} | "
            f"{fmt(s['data_share'] * 100, '.1f')}% | {ms('encode_pairs')} | {ms('encode_sets')} | "
            f"{ms('loss')} | "
            f"{ms('backward')} | {ms('optimizer')} | {fmt(s['peak_rss_mib'], '.0f')} | "
            f"{fmt(s.get('peak_share', None) and s['peak_share'] * 100, '.1f')}% |")
    lines.append("")
    for k, v in summary["ratios"].items():
        lines.append(f"- {k}: **{v:.2f}**")
    lm = summary["loss_memory_per_rank"]
    by_w = {int(w): b for w, b in lm["by_world"].items()}
    n_local = lm["local"][0] + lm["local"][1]
    w = sorted(by_w)
    inc = [(by_w[b] - by_w[a]) / ((b - a) * n_local) for a, b in zip(w, w[1:])]
    per_global = ", ".join(f"{k * n_local} global → {by_w[k] / 2 ** 10:.0f} KiB" for k in w)
    lines.append(f"- loss memory per rank (saved for backward), {lm['local'][0]} pairs + "
                 f"{lm['local'][1]} set items per rank: " + per_global +
                 "; bytes added per extra global item: " + ", ".join(f"{x:.0f}" for x in inc) +
                 " (constant: linear in the global batch)")
    (b1, m1), (b2, m2) = lm["one_rank_by_batch"].items()
    lines.append(f"- one rank holding the whole batch, pairs {b1} → {b2}: "
                 f"{m1 / 2 ** 10:.0f} → {m2 / 2 ** 10:.0f} KiB "
                 f"(×{m2 / m1:.2f}; local × global logits, so this part grows as the square)")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/default", help="embedded default data (hn_data.make_default)")
    ap.add_argument("--pair-shards", type=int, default=8)
    ap.add_argument("--captions", default="laion", choices=("laion", "short"),
                    help="laion: pair shards re-captioned with LAION's length tail (the claim); "
                         "short: the embedded default's ~10-token captions")
    ap.add_argument("--model", default="hnclip-tiny")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--batch", type=int, default=64, help="pairs per step (= open_clip's --batch-size)")
    ap.add_argument("--set-items", type=int, default=24, help="candidate-set items per step in *_sets arms")
    ap.add_argument("--workers", type=int, default=None,
                    help="data workers (default: conf/data/default.yaml)")
    ap.add_argument("--steps", type=int, default=40, help="timed steps per arm, after the warm-up")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--parts-reps", type=int, default=10, help="steps timed part by part")
    ap.add_argument("--vit-b32", action="store_true", help="also ViT-B/32 224 px bf16 vs open_clip amp_bf16")
    ap.add_argument("--vit-batch", type=int, default=32)
    ap.add_argument("--vit-model", default="ViT-B-32", help="the model of the vit_* arms")
    ap.add_argument("--vitl-model", default="ViT-L-14", help="the model of the vitl_ours_mem arm")
    ap.add_argument("--vitl-batch", type=int, default=None, help="its batch (default: half of --vit-batch)")
    ap.add_argument("--decode", default="pil", choices=("pil", "tensor"), help="data.decode of our arms")
    ap.add_argument("--vit-steps", type=int, default=5)
    ap.add_argument("--vit-warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads in every arm (default: torch's default, one per core)")
    ap.add_argument("--arms", default=None, help="comma-separated subset of the arms")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    choices=("cpu", "cuda"), help="where both trainers run (default: cuda if there is one)")
    ap.add_argument("--out", default=None, help="write all numbers as JSON here")
    ap.add_argument("--markdown", default=None, help="write the table as Markdown here")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)  # the matmul peak at the arms' thread count
    if a.workers is None:
        from omegaconf import OmegaConf
        a.workers = int(OmegaConf.load(ROOT / "conf/data/default.yaml").workers)
    if not (ROOT / a.data / "pairs").is_dir() and not Path(a.data, "pairs").is_dir():
        sys.exit(f"bench: no pairs under {a.data}; make them with "
                 f"`.venv/bin/python -m hn_data.make_default --out {a.data}`")
    if a.captions == "laion":
        from bench.laion_captions import make as make_laion
        src = a.data if Path(a.data, "pairs").is_dir() else str(ROOT / a.data)
        a.data = str(make_laion(src, src.rstrip("/") + "-laion"))
    names = list(TINY_ARMS) + (list(VIT_ARMS) if a.vit_b32 else [])
    if a.arms:
        known = TINY_ARMS + VIT_ARMS + EXTRA_ARMS
        unknown = set(a.arms.split(",")) - set(known)
        if unknown:
            sys.exit(f"bench: unknown arm(s) {sorted(unknown)}; choose from {known}")
        names = [n for n in known if n in a.arms.split(",")]

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load_start = os.getloadavg()
    peaks = device_peaks(a.device)
    print(f"[bench] matmul peak: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, "
          f"bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s "
          f"({torch.get_num_threads()} threads); load {load_start}", flush=True)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="hnclip_bench_") as tmp:
        work = Path(tmp)
        for r in range(a.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            res = {}
            for n in order:
                try:
                    res[n] = run_arm(n, a, work)
                except RuntimeError as e:  # one broken arm must not cost the others' numbers
                    print(f"[bench] round {r + 1} {n} FAILED: {e}", flush=True)
                    log = work / f"{n}.log"
                    if log.exists():
                        print("\n".join(log.read_text().splitlines()[-20:]), flush=True)
                    continue
                print(f"[bench] round {r + 1}/{a.rounds} {n}: {res[n]['samples_per_s']:.1f} samples/s, "
                      f"data {res[n]['data_share'] * 100:.1f}%, RSS {res[n]['peak_rss_mib']:.0f} MiB, "
                      f"load {res[n]['load_before']:.1f}->{res[n]['load_after']:.1f}", flush=True)
            rounds.append(res)
    peaks_end = device_peaks(a.device)
    summary = summarize(rounds, peaks, a)
    summary.update(started=started, captions=a.captions, data=a.data,
                   command=" ".join(["bench/bench_train.py"] + (argv or sys.argv[1:])),
                   load_start=load_start, load_end=os.getloadavg(), cpus=os.cpu_count(),
                   torch_threads=torch.get_num_threads(), matmul_peak=peaks, matmul_peak_end=peaks_end,
                   rounds=rounds)
    text = table(summary)
    env = (f"started {started}; captions: {a.captions} ({a.data}); {os.cpu_count()} CPUs, "
           f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
           f"matmul peak fp32 {peaks['fp32'] / 1e9:.0f} / bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s at start, "
           f"{peaks_end['fp32'] / 1e9:.0f} / {peaks_end['bf16'] / 1e9:.0f} at end; "
           f"load average {load_start[0]:.1f} at start, {summary['load_end'][0]:.1f} at end")
    print("\n" + text + "\n\n" + env)
    if a.out:
        Path(a.out).write_text(json.dumps(summary, indent=2, default=str))
    if a.markdown:
        Path(a.markdown).write_text(text + "\n\n" + env + "\n")
    return summary


if __name__ == "__main__":
    main()
