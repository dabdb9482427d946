"""Published ViT-B/32 numbers keyed by our metric names (<suite>/<metric>), each with its
source. Name the suites as conf/eval/full.yaml does (imagenet, sugarcrepe, valse, winoground,
aro_relation, aro_attribution) to get the reference columns.
"aro/avg" is the mean of our VG-Relation and VG-Attribution macro figures; papers' "ARO avg"
may also include COCO/Flickr order, so compare it with care."""
from .contract import is_count

MODELS = ("OpenAI CLIP", "NegCLIP", "CE-CLIP", "CLoVe", "DAC-LLM", "FSC-CLIP", "SPEC paper")

SPEC_PAPER = "Peng et al., Synthesize, Diagnose, and Optimize (SPEC), 2024"
TOOLKIT = "FSC-CLIP authors' vl_compo results.csv (Oh et al., 2024)"
SUGARCREPE = "Hsieh et al., SugarCrepe, 2023"

# metric -> ({model: value}, source)
REFERENCE = {
    "spec/mean/i2t": ({"OpenAI CLIP": 33.4, "SPEC paper": 53.3}, SPEC_PAPER),
    "spec/mean/t2i": ({"OpenAI CLIP": 30.6, "SPEC paper": 49.4}, SPEC_PAPER),
    "spec/absolute_size/i2t": ({"OpenAI CLIP": 44.3}, SPEC_PAPER),
    "spec/absolute_size/t2i": ({"OpenAI CLIP": 36.3}, SPEC_PAPER),
    "spec/relative_size/i2t": ({"OpenAI CLIP": 34.1}, SPEC_PAPER),
    "spec/relative_size/t2i": ({"OpenAI CLIP": 32.5}, SPEC_PAPER),
    "spec/absolute_spatial/i2t": ({"OpenAI CLIP": 12.6}, SPEC_PAPER),
    "spec/absolute_spatial/t2i": ({"OpenAI CLIP": 12.2}, SPEC_PAPER),
    "spec/relative_spatial/i2t": ({"OpenAI CLIP": 27.1}, SPEC_PAPER),
    "spec/relative_spatial/t2i": ({"OpenAI CLIP": 26.8}, SPEC_PAPER),
    "spec/existence/i2t": ({"OpenAI CLIP": 57.0}, SPEC_PAPER),
    "spec/existence/t2i": ({"OpenAI CLIP": 52.0}, SPEC_PAPER),
    "spec/count/i2t": ({"OpenAI CLIP": 25.3}, SPEC_PAPER),
    "spec/count/t2i": ({"OpenAI CLIP": 23.6}, SPEC_PAPER),
    "aro/avg": ({"OpenAI CLIP": 57.6, "NegCLIP": 80.9, "CE-CLIP": 76.3, "CLoVe": 83.0, "DAC-LLM": 86.4,
                 "FSC-CLIP": 85.1}, TOOLKIT),
    "sugarcrepe/avg/acc": ({"OpenAI CLIP": 73.0, "NegCLIP": 83.7, "CE-CLIP": 85.7, "CLoVe": 84.5,
                            "DAC-LLM": 85.3,
                            "FSC-CLIP": 85.1}, TOOLKIT),
    "sugarcrepe/replace_obj/acc": ({"OpenAI CLIP": 90.9}, SUGARCREPE),
    "sugarcrepe/replace_att/acc": ({"OpenAI CLIP": 80.1}, SUGARCREPE),
    "sugarcrepe/replace_rel/acc": ({"OpenAI CLIP": 69.2}, SUGARCREPE),
    "sugarcrepe/swap_obj/acc": ({"OpenAI CLIP": 61.4}, SUGARCREPE),
    "sugarcrepe/swap_att/acc": ({"OpenAI CLIP": 64.0}, SUGARCREPE),
    "sugarcrepe/add_obj/acc": ({"OpenAI CLIP": 77.2}, SUGARCREPE),
    "sugarcrepe/add_att/acc": ({"OpenAI CLIP": 68.8}, SUGARCREPE),
    "valse/avg/acc": ({"OpenAI CLIP": 67.5, "NegCLIP": 73.7, "CE-CLIP": 76.7, "CLoVe": 71.9, "DAC-LLM": 70.5,
                       "FSC-CLIP": 75.3}, TOOLKIT),
    "winoground/group": ({"OpenAI CLIP": 8.75, "NegCLIP": 8.0, "CE-CLIP": 5.25, "CLoVe": 6.5, "DAC-LLM": 4.75,
                          "FSC-CLIP": 9.5}, TOOLKIT),
    "imagenet/top1": ({"OpenAI CLIP": 63.3, "NegCLIP": 60.9, "CE-CLIP": 49.9, "CLoVe": 53.1, "DAC-LLM": 51.1},
                      TOOLKIT),
}


def with_derived(results):
    out = dict(results)
    aro = [results.get(f"aro_{k}/macro/acc") for k in ("relation", "attribution")]
    if all(v is not None for v in aro):
        out["aro/avg"] = sum(aro) / 2
    return out


def markdown(results, title=None):
    """One row per metric: ours beside every published number we have for it, and its source."""
    res = with_derived(results)
    lines = ([f"### {title}", ""] if title else []) + [
        "| metric | ours | " + " | ".join(MODELS) + " | source |",
        "| --- | ---: |" + " ---: |" * len(MODELS) + " --- |"]
    for k in sorted(res, key=lambda k: (k not in REFERENCE, k)):
        if is_count(k):
            continue
        ref, source = REFERENCE.get(k, ({}, ""))
        cells = [_num(ref[m]) if m in ref else "—" for m in MODELS]
        lines.append(f"| {k} | {res[k]:.1f} | " + " | ".join(cells) + f" | {source} |")
    return "\n".join(lines)


def summary_table(name, evaluator, metrics):
    """An evaluator's own end-of-run table (`summary(metrics)`, e.g. SPEC's subset x direction
    grid), or a plain metric/value list."""
    own = getattr(evaluator, "summary", None)
    if own is not None:
        return own(metrics)
    rows = [f"| {name}/{k} | {v:.1f} |" for k, v in metrics.items() if not is_count(k)]
    return "\n".join(["| metric | value |", "| --- | ---: |", *rows])


def _num(v):
    return f"{v:.1f}" if round(v, 1) == v else f"{v:g}"
