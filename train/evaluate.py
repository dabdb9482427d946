"""Evaluate any open_clip model on a list of benchmarks; write JSON and a markdown table with the
published reference numbers beside ours.

    python -m train.evaluate --checkpoint outputs/default            # a run (its final export)
    python -m train.evaluate --model ViT-B-32 --pretrained openai --eval full \\
        --benchmarks spec sugarcrepe winoground suites.sugarcrepe.root=/data/sugarcrepe ...

Benchmarks and their options come from an eval config (conf/eval/<name>.yaml, default
`default`); trailing key=value arguments override it (OmegaConf dotlist)."""
import argparse
import json
import time
from pathlib import Path

import torch

from train.eval import build_one, suite_options
from train.eval.load import eval_config, load
from train.eval.reference import markdown


def evaluate(model, preprocess, tokenizer, cfg, benchmarks, data_root, device="cpu"):
    results = {}
    for name in benchmarks:
        ev = build_one(name, suite_options(cfg, name), cfg.batch_size, 0, data_root)
        t0 = time.perf_counter()
        for k, v in ev.run(model, tokenizer, preprocess, device).items():
            results[f"{name}/{k}"] = v
        print(f"[evaluate] {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="run dir, RUN/final export, or RUN/checkpoints/step-N")
    src.add_argument("--model", help="open_clip model name (with --pretrained)")
    ap.add_argument("--pretrained", default=None, help="open_clip tag (openai) or weights file")
    ap.add_argument("--eval", default="default", help="conf/eval/<name>.yaml or a YAML path")
    ap.add_argument("--benchmarks", nargs="*", default=None, help="suite names (default: the config's)")
    ap.add_argument("--data-root", default="data/default")
    ap.add_argument("--out", default=None, help="output dir (default: <checkpoint>/eval or outputs/eval/<model>)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("overrides", nargs="*", help="eval config overrides, e.g. suites.winoground.jsonl=...")
    args = ap.parse_args(argv)

    cfg = eval_config(args.eval, args.overrides)
    model, preprocess, tokenizer, desc = load(args.checkpoint, args.model, args.pretrained)
    model.to(args.device)
    benchmarks = args.benchmarks or list(cfg.benchmarks)
    results = evaluate(model, preprocess, tokenizer, cfg, benchmarks, args.data_root, args.device)
    out = Path(args.out or (Path(args.checkpoint) / "eval" if args.checkpoint
                            else Path("outputs/eval") / f"{args.model}-{args.pretrained or 'random'}"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"model": desc, "results": results}, indent=2))
    table = markdown(results, title=f"{desc}")
    (out / "results.md").write_text(table + "\n")
    print(table)
    print(f"\n[evaluate] wrote {out / 'results.json'} and {out / 'results.md'}")
    return results


if __name__ == "__main__":
    main()
