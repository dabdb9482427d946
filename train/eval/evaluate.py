"""Evaluate any model on a list of benchmarks; write JSON and a markdown table with the
published reference numbers beside ours.

    python -m train.evaluate checkpoint=outputs/default            # a run (its final export)
    python -m train.evaluate checkpoint=outputs/default/checkpoints/step-0000300/trainer.pt
    python -m train.evaluate model=ViT-B-32-quickgelu pretrained=openai eval=full \\
        benchmarks=[spec,sugarcrepe,winoground] suites.sugarcrepe.root=/data/sugarcrepe ...
    python -m train.evaluate list=true                             # every suite type and its keys

Benchmarks and their options come from an eval config (conf/eval/<name>.yaml, default
`default`); `suites.<name>.<key>=...`, `batch_size=` and `spec_root=` override it. tie_rule and
allow_outside_root apply to every suite. Results go to `out` (default: <run or export
dir>/eval, or outputs/eval/<model>); the directory is made before any evaluation, so a path
that cannot be written fails at once, not after the last benchmark."""
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from omegaconf import OmegaConf

from hn_data.cli import ConfigError, command, setting

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


@dataclass
class EvalConfigKeys:
    """The keys that pick the benchmarks and their options (shared with the contamination check)."""
    eval: str = setting("default", "conf/eval/<name>.yaml or a YAML path")
    benchmarks: Optional[List[str]] = setting(None, "suite names (default: the eval config's)")
    suites: Dict[str, Any] = setting({}, "per-suite options over the eval config's, e.g. "
                                     "suites.winoground.jsonl=...")
    batch_size: Optional[int] = setting(None, "default: the eval config's")
    spec_root: Optional[str] = setting(None, "default: the eval config's")
    data_root: str = setting("data/default")


@dataclass
class EvaluateCommand(EvalConfigKeys):
    checkpoint: Optional[str] = setting(None, "run dir, RUN/final export, RUN/checkpoints/step-N or its "
                                        "trainer.pt")
    model: Optional[str] = setting(None, "open_clip model name (with pretrained), or hf:<repo id or "
                                   "local dir>")
    pretrained: Optional[str] = setting(None, "open_clip tag (openai) or weights file")
    tie_rule: Optional[str] = setting(None, f"{' | '.join(TIE_RULES)} (SPEC's official rule is first); "
                                      "default: each suite's")
    allow_outside_root: Optional[bool] = setting(None, "accept image paths in benchmark files that are "
                                                 "absolute or contain '..'")
    out: Optional[str] = setting(None, "output dir (default: <checkpoint dir>/eval or outputs/eval/<model>)")
    device: str = setting("auto", "auto (cuda when there is one, else cpu) | cpu | cuda | cuda:N")
    list: bool = setting(False, "print every suite type and its keys (? = optional), nothing else")


def check(args: EvaluateCommand):
    if args.list:
        return
    if args.checkpoint and args.model:
        raise ConfigError("checkpoint and model: give one of them")
    if not (args.checkpoint or args.model):
        raise ConfigError("give checkpoint=... or model=... (or list=true)")
    if args.tie_rule is not None and args.tie_rule not in TIE_RULES:
        raise ConfigError(f"invalid value tie_rule={args.tie_rule!r}; choose one of {TIE_RULES}")


def command_eval_config(args: EvalConfigKeys):
    """The eval config file with the command line's suites / batch_size / spec_root over it."""
    cfg = eval_config(args.eval)
    extra = {"suites": args.suites}
    extra.update({k: getattr(args, k) for k in ("batch_size", "spec_root") if getattr(args, k) is not None})
    return OmegaConf.merge(cfg, extra)


def run(args: EvaluateCommand):
    check(args)
    if args.list:
        print(list_types())
        return {}
    cfg = command_eval_config(args)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    out = output_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    model, preprocess, tokenizer, desc = load(args.checkpoint, args.model, args.pretrained)
    model.to(device)
    benchmarks = args.benchmarks or list(cfg.benchmarks)
    rules = {}
    results = evaluate(model, preprocess, tokenizer, cfg, benchmarks, args.data_root, device,
                       args.tie_rule, args.allow_outside_root, rules)
    (out / "results.json").write_text(json.dumps({"model": desc, "tie_rule": rules, "results": results},
                                                 indent=2))
    shown = sorted(set(rules.values()))
    table = markdown(results, title=f"{desc} (ties: {', '.join(shown)})")
    (out / "results.md").write_text(table + "\n")
    print(table)
    print(f"\n[evaluate] wrote {out / 'results.json'} and {out / 'results.md'}")
    return results


main = command(EvaluateCommand, run, prog="hnclip-evaluate", doc=__doc__, check=check)


if __name__ == "__main__":
    main()
