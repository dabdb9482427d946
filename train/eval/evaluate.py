"""Evaluate any model on a list of benchmarks; write JSON and a markdown table with the
published reference numbers beside ours.

    python -m train.evaluate --checkpoint outputs/default            # a run (its final export)
    python -m train.evaluate --checkpoint outputs/default/checkpoints/step-0000300/trainer.pt
    python -m train.evaluate --model ViT-B-32-quickgelu --pretrained openai --eval full \\
        --benchmarks spec sugarcrepe winoground suites.sugarcrepe.root=/data/sugarcrepe ...
    python -m train.evaluate --list                                  # every suite type and its keys

Benchmarks and their options come from an eval config (conf/eval/<name>.yaml, default
`default`); trailing key=value arguments override it (OmegaConf dotlist). --tie-rule and
--allow-outside-root apply to every suite. Results go to --out (default: <run or export
dir>/eval, or outputs/eval/<model>); the directory is made before any evaluation, so a path
that cannot be written fails at once, not after the last benchmark."""
import argparse
import json
import time
from pathlib import Path

import torch

from . import TYPES, build_one, keys_of, suite_options
from .contract import run_suite
from .load import eval_config, load
from .reference import markdown
from .scoring import TIE_RULES


def evaluate(model, preprocess, tokenizer, cfg, benchmarks, data_root, device="cpu", tie_rule=None,
             allow_outside_root=None, rules=None):
    """-> {<suite>/<metric>: value} (counts under <suite>/counts/). `rules`, if a dict, gets
    each suite's tie rule."""
    results = {}
    for name in benchmarks:
        ev = build_one(name, suite_options(cfg, name), cfg.batch_size, 0, data_root,
                       tie_rule=tie_rule, allow_outside_root=allow_outside_root)
        t0 = time.perf_counter()
        res = run_suite(ev, model, tokenizer, preprocess, device)
        results.update({f"{name}/{k}": v for k, v in res.flat().items()})
        if rules is not None:
            rules[name] = res.tie_rule
        print(f"[evaluate] {name}: {time.perf_counter() - t0:.1f} s (ties: {res.tie_rule})", flush=True)
    return results


def output_dir(args):
    if args.out:
        return Path(args.out)
    if args.checkpoint:
        path = Path(args.checkpoint)
        return (path.parent if path.is_file() else path) / "eval"
    return Path("outputs/eval") / f"{args.model.replace('/', '_')}-{args.pretrained or 'random'}"


def list_types():
    lines = []
    for kind in sorted(TYPES):
        keys = keys_of(kind)
        lines.append(f"{kind}: " + ", ".join(f"{k}{'' if req else '?'}" for k, req in keys.items()))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--checkpoint",
                     help="run dir, RUN/final export, RUN/checkpoints/step-N or its trainer.pt")
    src.add_argument("--model", help="open_clip model name (with --pretrained), or hf:<repo id or local dir>")
    src.add_argument("--list", action="store_true", help="print every suite type and its keys (? = optional)")
    ap.add_argument("--pretrained", default=None, help="open_clip tag (openai) or weights file")
    ap.add_argument("--eval", default="default", help="conf/eval/<name>.yaml or a YAML path")
    ap.add_argument("--benchmarks", nargs="*", default=None, help="suite names (default: the config's)")
    ap.add_argument("--data-root", default="data/default")
    ap.add_argument("--tie-rule", choices=TIE_RULES, default=None,
                    help="strict (a tie is wrong) or first (argmax: SPEC's official rule); default: each "
                    "suite's")
    ap.add_argument("--allow-outside-root", action="store_true", default=None,
                    help="accept image paths in benchmark files that are absolute or contain '..'")
    ap.add_argument("--out", default=None,
                    help="output dir (default: <checkpoint dir>/eval or outputs/eval/<model>)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("overrides", nargs="*", help="eval config overrides, e.g. suites.winoground.jsonl=...")
    args = ap.parse_args(argv)
    if args.list:
        print(list_types())
        return {}
    if not (args.checkpoint or args.model):
        ap.error("give --checkpoint or --model (or --list)")

    cfg = eval_config(args.eval, args.overrides)
    out = output_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    model, preprocess, tokenizer, desc = load(args.checkpoint, args.model, args.pretrained)
    model.to(args.device)
    benchmarks = args.benchmarks or list(cfg.benchmarks)
    rules = {}
    results = evaluate(model, preprocess, tokenizer, cfg, benchmarks, args.data_root, args.device,
                       args.tie_rule, args.allow_outside_root, rules)
    (out / "results.json").write_text(json.dumps({"model": desc, "tie_rule": rules, "results": results},
                                                 indent=2))
    shown = sorted(set(rules.values()))
    table = markdown(results, title=f"{desc} (ties: {', '.join(shown)})")
    (out / "results.md").write_text(table + "\n")
    print(table)
    print(f"\n[evaluate] wrote {out / 'results.json'} and {out / 'results.md'}")
    return results


if __name__ == "__main__":
    main()
