"""Evaluators. Contract (big_vision's): built from config; run(model, tokenizer, preprocess,
device) -> {metric name: value}. The trainer knows nothing about individual benchmarks.

eval.benchmarks names the suites to run; eval.suites.<name> holds each one's options, `type`
defaulting to the name. Types and their keys (paths relative to the working directory):
  spec        root (default <data.root>/spec_heldout), classes (coco80|procedural|file: CLS), subsets
  zeroshot    root (image folder) | urls (webdataset), classnames, templates
  retrieval   urls
  sugarcrepe  root (folder of <sub-task>.json), image_root, subtasks
  aro_relation / aro_attribution   ann (JSON file), image_root
  valse       files ({piece: json}), image_root (folder or {piece: folder})
  winoground  jsonl (examples.jsonl), image_root
Every suite also takes every_steps (default eval.every_steps; must be a multiple of it, because
the trainer ticks at eval.every_steps) and limit (first N items: a cheap in-training check)."""
from omegaconf import OmegaConf

from .aro import AroEvaluator
from .retrieval import RetrievalEvaluator
from .spec import SpecEvaluator
from .sugarcrepe import SugarCrepeEvaluator
from .valse import ValseEvaluator
from .winoground import WinogroundEvaluator
from .zeroshot import ZeroShotEvaluator

COMMON = ("type", "every_steps", "limit")


def _spec(o, bs, n_ex, data_root):
    return SpecEvaluator(o.get("root") or f"{data_root}/spec_heldout", bs, o.get("subsets"), o.get("classes"),
                         o.get("limit"), n_ex)


BUILDERS = {
    "spec": (_spec, ("root", "subsets", "classes")),
    "zeroshot": (lambda o, bs, n, d: ZeroShotEvaluator(o.get("root"), o.get("urls"), o.get("classnames"),
                                                       o.get("templates", "openai"), bs, o.get("limit")),
                 ("root", "urls", "classnames", "templates")),
    "retrieval": (lambda o, bs, n, d: RetrievalEvaluator(o["urls"], bs, o.get("limit")), ("urls",)),
    "sugarcrepe": (lambda o, bs, n, d: SugarCrepeEvaluator(o["root"], o["image_root"], o.get("subtasks"), bs,
                                                           o.get("limit"), n), ("root", "image_root", "subtasks")),
    "aro_relation": (lambda o, bs, n, d: AroEvaluator(o["ann"], o["image_root"], "relation", bs, o.get("limit"), n),
                     ("ann", "image_root")),
    "aro_attribution": (lambda o, bs, n, d: AroEvaluator(o["ann"], o["image_root"], "attribution", bs,
                                                         o.get("limit"), n), ("ann", "image_root")),
    "valse": (lambda o, bs, n, d: ValseEvaluator(o["files"], o["image_root"], bs, o.get("limit"), n),
              ("files", "image_root")),
    "winoground": (lambda o, bs, n, d: WinogroundEvaluator(o["jsonl"], o["image_root"], bs, o.get("limit"), n),
                   ("jsonl", "image_root")),
}


def suite_options(eval_cfg, name):
    """The plain-dict options of one suite, with the legacy eval.spec_root honoured."""
    suites = eval_cfg.get("suites") or {}
    opts = suites.get(name) or {}
    opts = OmegaConf.to_container(opts, resolve=True) if OmegaConf.is_config(opts) else dict(opts)
    opts.setdefault("type", name)
    if opts["type"] == "spec" and not opts.get("root") and eval_cfg.get("spec_root"):
        opts["root"] = eval_cfg.get("spec_root")
    return opts


def check_options(name, opts):
    """Type and keys of one suite's options (no file is opened). -> the suite type."""
    kind = opts.get("type", name)
    if kind not in BUILDERS:
        raise ValueError(f"eval suite '{name}': unknown type '{kind}'; known: {sorted(BUILDERS)}")
    keys = BUILDERS[kind][1]
    unknown = set(opts) - set(keys) - set(COMMON)
    if unknown:
        raise ValueError(f"eval.suites.{name}: unknown key(s) {sorted(unknown)} for type {kind}; "
                         f"allowed: {sorted(keys + COMMON)}")
    return kind


def build_one(name, opts, batch_size=128, examples=0, data_root="data/default", tick=0):
    kind = check_options(name, opts)
    build = BUILDERS[kind][0]
    try:
        ev = build(opts, batch_size, examples, data_root)
    except KeyError as e:
        raise ValueError(f"eval.suites.{name} (type {kind}) needs key {e}") from None
    every = opts.get("every_steps")
    if every and tick and every % tick:
        raise ValueError(f"eval.suites.{name}.every_steps={every} must be a multiple of eval.every_steps={tick}")
    ev.every_steps = every or tick
    ev.suite_type = kind
    return ev


def build_evaluators(eval_cfg, data_root):
    out = {}
    for name in eval_cfg.benchmarks:
        out[name] = build_one(name, suite_options(eval_cfg, name), eval_cfg.batch_size,
                              eval_cfg.get("examples", 0) or 0, data_root, eval_cfg.every_steps)
    return out
