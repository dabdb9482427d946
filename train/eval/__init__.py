"""Evaluators (contract: contract.py). eval.benchmarks names the suites to run;
eval.suites.<name> holds each one's options, `type` defaulting to the name. A type's keys are
its evaluator's constructor parameters, read off the signature (`python -m train.evaluate
list=true` prints them); every suite also takes every_steps (a multiple of eval.every_steps,
because the trainer ticks at eval.every_steps), limit, tie_rule and allow_outside_root (base.py).
Paths are relative to the working directory. The types are listed in docs/diagnosis.md."""
import inspect

from omegaconf import OmegaConf

from .aro import AroAttributionEvaluator, AroRelationEvaluator
from .aro_order import AroOrderEvaluator
from .base import RUNTIME, Evaluator
from .cola import ColaEvaluator
from .cola_single import ColaSingleEvaluator
from .crepe import CrepeEvaluator
from .eqben import EqBenEvaluator
from .mmvp import MmvpEvaluator
from .retrieval import RetrievalEvaluator
from .spec import SpecEvaluator
from .sugarcrepe import SugarCrepeEvaluator
from .sugarcrepe_pp import SugarCrepePPEvaluator
from .svo import SvoProbesEvaluator
from .valse import ValseEvaluator
from .vl_checklist import VlCheckListEvaluator
from .vsr import VsrEvaluator
from .winoground import WinogroundEvaluator
from .zeroshot import ZeroShotEvaluator, ZeroShotSuiteEvaluator

EVALUATORS = (SpecEvaluator, ZeroShotEvaluator, ZeroShotSuiteEvaluator, RetrievalEvaluator,
              SugarCrepeEvaluator,
              AroRelationEvaluator, AroAttributionEvaluator, ValseEvaluator, WinogroundEvaluator,
              EqBenEvaluator,
              SvoProbesEvaluator, VsrEvaluator, AroOrderEvaluator, SugarCrepePPEvaluator,
              MmvpEvaluator, ColaEvaluator, CrepeEvaluator, VlCheckListEvaluator,
              ColaSingleEvaluator)
TYPES = {cls.type_name: cls for cls in EVALUATORS}
SUITE_ONLY = ("type", "every_steps")  # read by the builder, not passed to the evaluator


def register(cls):
    """Add an evaluator type (a subclass of base.Evaluator with a type_name)."""
    if not (isinstance(cls, type) and issubclass(cls, Evaluator) and cls.type_name):
        raise TypeError(f"{cls!r} is not an Evaluator subclass with a type_name")
    TYPES[cls.type_name] = cls
    return cls


def _params(cls):
    """{name: required?} of the config keys a type takes: its own constructor's parameters and
    those of base.Evaluator, minus the runtime ones."""
    out = {}
    for c in (cls, Evaluator):
        for name, p in inspect.signature(c.__init__).parameters.items():
            if name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or name in RUNTIME:
                continue
            out.setdefault(name, p.default is inspect.Parameter.empty)
    return out


def keys_of(kind):
    return _params(TYPES[kind])


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
    if kind not in TYPES:
        raise ValueError(f"eval suite '{name}': unknown type '{kind}'; known: {sorted(TYPES)}")
    params = keys_of(kind)
    unknown = set(opts) - set(params) - set(SUITE_ONLY)
    if unknown:
        raise ValueError(f"eval.suites.{name}: unknown key(s) {sorted(unknown)} for type {kind}; "
                         f"allowed: {sorted(set(params) | set(SUITE_ONLY))}")
    missing = [k for k, required in params.items() if required and k not in opts]
    if missing:
        raise ValueError(f"eval.suites.{name} (type {kind}) needs key(s) {missing}")
    return kind


def build_one(name, opts, batch_size=128, examples=0, data_root="data/default", tick=0, **overrides):
    """One evaluator from its suite options; `overrides` (e.g. tie_rule) apply to every suite."""
    opts = {**opts, **{k: v for k, v in overrides.items() if v is not None}}
    kind = check_options(name, opts)
    cls = TYPES[kind]
    accepted = inspect.signature(cls.__init__).parameters
    runtime = {"batch_size": batch_size, "examples": examples}
    if "data_root" in accepted:
        runtime["data_root"] = data_root
    ev = cls(**{k: v for k, v in opts.items() if k not in SUITE_ONLY}, **runtime)
    every = opts.get("every_steps")
    if every and tick and every % tick:
        raise ValueError(f"eval.suites.{name}.every_steps={every} must be a multiple of "
                         f"eval.every_steps={tick}")
    ev.every_steps = every or tick
    ev.suite_type = kind
    return ev


def build_evaluators(eval_cfg, data_root):
    out = {}
    for name in eval_cfg.benchmarks:
        out[name] = build_one(name, suite_options(eval_cfg, name), eval_cfg.batch_size,
                              eval_cfg.get("examples", 0) or 0, data_root, eval_cfg.every_steps)
    return out
