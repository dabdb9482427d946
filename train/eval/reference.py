"""Published ViT-B/32 numbers (../shared/method.md §5) keyed by our metric names
(<suite>/<metric>). Name an ImageNet zero-shot suite `imagenet` to get its reference column.
"aro/avg" is the mean of our VG-Relation and VG-Attribution macro figures; papers' "ARO avg"
may also include COCO/Flickr order, so compare it with care."""
from .contract import is_count

MODELS = ("OpenAI CLIP", "NegCLIP", "FSC-CLIP", "SPEC paper")

REFERENCE = {
    "spec/mean/i2t": {"OpenAI CLIP": 33.4, "SPEC paper": 53.3},
    "spec/mean/t2i": {"OpenAI CLIP": 30.6, "SPEC paper": 49.4},
    "spec/absolute_size/i2t": {"OpenAI CLIP": 44.3}, "spec/absolute_size/t2i": {"OpenAI CLIP": 36.3},
    "spec/relative_size/i2t": {"OpenAI CLIP": 34.1}, "spec/relative_size/t2i": {"OpenAI CLIP": 32.5},
    "spec/absolute_spatial/i2t": {"OpenAI CLIP": 12.6}, "spec/absolute_spatial/t2i": {"OpenAI CLIP": 12.2},
    "spec/relative_spatial/i2t": {"OpenAI CLIP": 27.1}, "spec/relative_spatial/t2i": {"OpenAI CLIP": 26.8},
    "spec/existence/i2t": {"OpenAI CLIP": 57.0}, "spec/existence/t2i": {"OpenAI CLIP": 52.0},
    "spec/count/i2t": {"OpenAI CLIP": 25.3}, "spec/count/t2i": {"OpenAI CLIP": 23.6},
    "aro/avg": {"OpenAI CLIP": 57.6, "NegCLIP": 80.9, "FSC-CLIP": 85.1},
    "sugarcrepe/avg/acc": {"OpenAI CLIP": 73.0, "NegCLIP": 83.7, "FSC-CLIP": 85.1},
    "winoground/group": {"OpenAI CLIP": 8.75, "NegCLIP": 8.0, "FSC-CLIP": 9.5},
    "imagenet/top1": {"OpenAI CLIP": 63.3, "NegCLIP": 60.9},
}


def with_derived(results):
    out = dict(results)
    aro = [results.get(f"aro_{k}/macro/acc") for k in ("relation", "attribution")]
    if all(v is not None for v in aro):
        out["aro/avg"] = sum(aro) / 2
    return out


def markdown(results, title=None):
    """One row per metric: ours beside every published number we have for it."""
    res = with_derived(results)
    lines = ([f"### {title}", ""] if title else []) + [
        "| metric | ours | " + " | ".join(MODELS) + " |", "| --- | ---: |" + " ---: |" * len(MODELS)]
    for k in sorted(res, key=lambda k: (k not in REFERENCE, k)):
        if is_count(k):
            continue
        ref = REFERENCE.get(k, {})
        lines.append(f"| {k} | {res[k]:.1f} | " + " | ".join(_num(ref[m]) if m in ref else "—" for m in MODELS) + " |")
    return "\n".join(lines)


def _num(v):
    return f"{v:.1f}" if round(v, 1) == v else f"{v:g}"


def summary_table(name, evaluator, metrics):
    """An evaluator's own end-of-run table (`summary(metrics)`, e.g. SPEC's subset x direction
    grid), or a plain metric/value list."""
    own = getattr(evaluator, "summary", None)
    if own is not None:
        return own(metrics)
    rows = [f"| {name}/{k} | {v:.1f} |" for k, v in metrics.items() if not is_count(k)]
    return "\n".join(["| metric | value |", "| --- | ---: |", *rows])
