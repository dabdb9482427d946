"""`python -m train.probe.main`: probe one open_clip model or checkpoint (config: conf/probe.yaml).

parse -> data -> backbone -> probe runs per task -> results.json + report.md (+ PNG)."""
import json
import os
import shutil
import sys
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from train.config import conf_dir

from . import report, scenes
from .features import load_backbone, parse_layers
from .refs import load_refs
from .run import category_stats, run_task
from .tasks import boxes, rcm, vsr
from .tasks.common import SPLITS


def generated_data(g, seed):
    """Write the generated scenes once (into a temp dir, renamed when complete, so a crash or
    a concurrent run never leaves half a data set behind)."""
    out = Path(g.dir)
    if not (out / ".complete").is_file():
        tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        scenes.generate(tmp, {s: int(g[s]) for s in SPLITS}, size=g.size, seed=seed,
                        max_objects=g.max_objects)
        (tmp / ".complete").write_text("")
        if not (out / ".complete").is_file():
            shutil.rmtree(out, ignore_errors=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, out)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_tasks(cfg, log=print):
    d = cfg.data
    if d.source == "generated":
        root = generated_data(d.generated, cfg.seed)
        refs_path, refs_root = root / "refs.jsonl", root
        vsr_paths, vsr_root = {s: root / f"vsr_{s}.jsonl" for s in SPLITS}, root
    elif d.source == "files":
        refs_path, refs_root = d.refs, d.refs_image_root
        vsr_paths, vsr_root = dict(d.vsr), d.vsr_image_root
    else:
        raise ValueError(f"data.source '{d.source}': use generated | files")
    tasks = []
    if {"rcm", "boxes"} & set(cfg.tasks):
        if not refs_path:
            raise ValueError("tasks rcm/boxes need data.refs (a RefCOCOg-style jsonl) with data.source=files")
        refs, skipped = load_refs(refs_path, refs_root)
        log(f"[probe] {len(refs)} referring expressions from {refs_path} (skipped: {skipped})")
        if "boxes" in cfg.tasks:
            tasks.append(boxes.build(refs))
        if "rcm" in cfg.tasks:
            tasks.append(rcm.build(refs, seed=cfg.seed))
    if "vsr" in cfg.tasks:
        task = vsr.build(vsr_paths, vsr_root)
        log(f"[probe] VSR examples with missing images skipped: {task.skipped}")
        tasks.append(task)
    unknown = set(cfg.tasks) - {"rcm", "boxes", "vsr"}
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}: use rcm | boxes | vsr")
    return tasks


def probe(cfg: DictConfig):
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    t0 = time.time()
    tasks = build_tasks(cfg)
    model, preprocess, tokenizer = load_backbone(cfg.model.name, cfg.model.pretrained, cfg.seed)
    m = cfg.model
    label = m.label or (m.name if not m.pretrained else f"{m.name} ({m.pretrained})")
    doc = {"meta": {"label": label, "model": m.name, "pretrained": m.pretrained,
                    "main_layer": str(parse_layers(cfg.features.layer, model)[0]),
                    "pooling": cfg.features.pooling, "text": cfg.features.text,
                    "data": (cfg.data.source if cfg.data.source != "generated"
                             else str(cfg.data.generated.dir)),
                    "sizes": {t.name: [len(t.splits[s]) for s in SPLITS] for t in tasks}},
           "results": [],
           "category_stats": {t.name: category_stats(t) for t in tasks}}
    for task in tasks:
        doc["results"] += run_task(task, model, preprocess, tokenizer, cfg)
        # written after every task, so a long run that is stopped still leaves its finished tasks
        doc["meta"]["seconds"] = round(time.time() - t0, 1)
        (out / "results.json").write_text(json.dumps(doc, indent=1))
        report.build(doc, out)
    print(f"[probe] report: {out / 'report.md'} ({doc['meta']['seconds']}s)")
    return doc


def _keys(node, prefix=""):
    keys = []
    for key, value in node.items():
        keys.append(f"{prefix}{key}")
        if isinstance(value, dict):
            keys += _keys(value, f"{prefix}{key}.")
    return keys


def _defined(config: dict, dotted: str) -> bool:
    """Whether a key names one of conf/probe.yaml's (a list item by its index)."""
    node = config
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit():
            node = node[int(part)] if int(part) < len(node) else None
        else:
            return False
    return True


def check_command_line(argv) -> None:
    """conf/probe.yaml's keys are the probe's schema: a key it does not have, with or without '+',
    exits 2 naming the nearest valid keys (as hnclip-train does), rather than 1 with Hydra's 'Could
    not override' (or, with '+', a key nothing reads). With another config (--config-name,
    --config-dir, --config-path) Hydra alone judges the keys."""
    from hydra._internal.utils import get_args_parser

    from hn_data.cli import CONFIG_ERROR_EXIT_CODE, ConfigError, check_override_keys
    flags = get_args_parser().parse_args(argv)
    if flags.config_name or flags.config_dir or flags.config_path or flags.shell_completion:
        return
    config = OmegaConf.to_container(OmegaConf.load(Path(conf_dir()) / "probe.yaml"), resolve=False)
    config.pop("hydra", None)
    try:
        check_override_keys(flags.overrides, _keys(config), lambda key: _defined(config, key))
    except ConfigError as e:
        print(f"hnclip-probe: {e}", file=sys.stderr)
        sys.exit(CONFIG_ERROR_EXIT_CODE)


def main():
    check_command_line(sys.argv[1:])
    _hydra_main()


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="probe")  # conf/, checkout or wheel
def _hydra_main(cfg: DictConfig):
    probe(cfg)


if __name__ == "__main__":
    main()
