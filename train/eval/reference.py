"""Published numbers keyed by our metric names (<suite>/<metric>), each row with its source
(paper and table). Name the suites as conf/eval/full.yaml does (imagenet, elevater, sugarcrepe,
valse, winoground, eqben, aro_relation, aro_attribution, aro_coco_order, aro_flickr_order) to get
the reference columns. Every figure is printed in its source; none is derived here.
All are ViT-B/32 except SPEC's Table 2 rows for FLAVA, BLIP and CoCa; SPEC's evaluation code
(spec/models/__init__.py) runs them as dual encoders: FLAVA as facebook/flava-full's projected
first-token features, BLIP as its COCO-retrieval base model's ITC features, CoCa as open_clip's
coca_ViT-B-32 with the laion2B-s13B-b90k weights (here: --model hf:<FLAVA or BLIP checkpoint>,
--model coca_ViT-B-32 --pretrained laion2B-s13B-b90k).
"aro/avg" is the mean of our VG-Relation and VG-Attribution macro figures; papers' "ARO avg"
may also include COCO/Flickr order, so compare it with care. "aro/order" is the mean of our
COCO-Order and Flickr30k-Order figures, set beside SPEC's single "Order" column (the paper does
not say how it combines the two). "elevater/avg/top1" is set beside SPEC's zero-shot average
over nine ELEVATER datasets that the paper does not name: ours averages the nine we chose
(docs/diagnosis.md), so the comparison is of a before/after difference, not of the level."""
from .contract import is_count

MODELS = ("OpenAI CLIP", "NegCLIP", "CE-CLIP", "CLoVe", "DAC-LLM", "FSC-CLIP",
          "SPEC paper", "SPEC: L_hn only", "SPEC: L_clip only", "CLIP FT (no HN)",
          "FLAVA", "BLIP", "CoCa")

SPEC_PAPER = "Peng et al., Synthesize, Diagnose, and Optimize (SPEC), 2024"
SPEC_T2 = f"{SPEC_PAPER}, Table 2"
SPEC_T3 = f"{SPEC_PAPER}, Table 3"
SPEC_T4 = f"{SPEC_PAPER}, Table 4"
TOOLKIT = "FSC-CLIP authors' vl_compo results.csv (Oh et al., 2024)"
SUGARCREPE = "Hsieh et al., SugarCrepe, 2023"

# SPEC Table 2 ("Evaluation results on SPEC"), I2T / T2I / CLS per subset, as printed; the
# paper's Absolute / Relative Position are our absolute_spatial / relative_spatial
_SPEC_TABLE2 = {
    "FLAVA": ((37.3, 37.2, 89.3), (32.9, 32.3, 84.1), (13.1, 15.7, 88.8), (25.5, 26.7, 84.0),
              (57.9, 51.9, 74.4), (14.4, 21.2, 75.8)),
    "BLIP": ((43.3, 42.7, 97.7), (33.2, 32.5, 98.2), (12.2, 11.0, 97.9), (30.5, 29.7, 97.6),
             (55.4, 50.1, 96.0), (37.4, 37.1, 93.8)),
    "CoCa": ((39.1, 36.1, 95.9), (33.6, 33.3, 95.4), (11.7, 11.8, 96.1), (30.3, 28.8, 92.2),
             (50.9, 50.0, 83.7), (36.5, 35.6, 89.6)),
    "OpenAI CLIP": ((42.5, 36.1, 92.1), (34.4, 33.4, 94.9), (12.6, 12.3, 92.8), (28.0, 26.6, 90.1),
                    (58.3, 51.2, 84.0), (25.1, 23.2, 83.9)),
    "SPEC paper": ((68.9, 60.7, 96.3), (40.3, 44.1, 97.3), (30.6, 34.2, 96.9), (46.6, 46.9, 96.2),
                   (83.4, 53.1, 92.5), (55.6, 57.8, 92.5)),
}
_SPEC_SUBSETS = ("absolute_size", "relative_size", "absolute_spatial", "relative_spatial", "existence",
                 "count")


def _spec_table2():
    out = {}
    for model, rows in _SPEC_TABLE2.items():
        for subset, values in zip(_SPEC_SUBSETS, rows):
            for metric, v in zip(("i2t", "t2i", "cls"), values):
                out.setdefault(f"spec/{subset}/{metric}", ({}, SPEC_T2))[0][model] = v
    return out


# metric -> ({model: value}, source)
REFERENCE = {
    **_spec_table2(),
    # Table 3 ("Main Results"): CLIP, + L_hn, + L_clip, + both (the paper's model)
    "spec/mean/i2t": ({"OpenAI CLIP": 33.5, "SPEC: L_hn only": 64.3, "SPEC: L_clip only": 32.2,
                       "SPEC paper": 53.3}, SPEC_T3),
    "spec/mean/t2i": ({"OpenAI CLIP": 30.5, "SPEC: L_hn only": 60.8, "SPEC: L_clip only": 31.5,
                       "SPEC paper": 49.4}, SPEC_T3),
    "elevater/avg/top1": ({"OpenAI CLIP": 67.5, "SPEC: L_hn only": 62.4, "SPEC: L_clip only": 69.4,
                           "SPEC paper": 68.7}, SPEC_T3),
    # Table 4 ("Cross-dataset evaluation"): CLIP, CLIP fine-tuned without hard negatives, SPEC
    "eqben/image": ({"OpenAI CLIP": 17.6, "CLIP FT (no HN)": 18.1, "SPEC paper": 19.5}, SPEC_T4),
    "eqben/text": ({"OpenAI CLIP": 21.4, "CLIP FT (no HN)": 23.7, "SPEC paper": 24.0}, SPEC_T4),
    "eqben/group": ({"OpenAI CLIP": 10.1, "CLIP FT (no HN)": 11.1, "SPEC paper": 11.7}, SPEC_T4),
    "aro_attribution/macro/acc": ({"OpenAI CLIP": 63.2, "CLIP FT (no HN)": 65.1, "SPEC paper": 66.4},
                                  SPEC_T4),
    "aro_relation/macro/acc": ({"OpenAI CLIP": 63.9, "CLIP FT (no HN)": 68.0, "SPEC paper": 73.7}, SPEC_T4),
    "aro/order": ({"OpenAI CLIP": 53.3, "CLIP FT (no HN)": 54.1, "SPEC paper": 60.7}, SPEC_T4),
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
    order = [results.get(f"aro_{k}_order/acc") for k in ("coco", "flickr")]
    if all(v is not None for v in order):
        out["aro/order"] = sum(order) / 2
    return out


def markdown(results, title=None):
    """One row per metric: ours beside every published number we have for it, and its source."""
    res = with_derived(results)
    keys = [k for k in sorted(res, key=lambda k: (k not in REFERENCE, k)) if not is_count(k)]
    # only the models with a published figure among these rows (else one column, for the layout)
    models = [m for m in MODELS if any(m in REFERENCE.get(k, ({}, ""))[0] for k in keys)] or list(MODELS[:1])
    lines = ([f"### {title}", ""] if title else []) + [
        "| metric | ours | " + " | ".join(models) + " | source |",
        "| --- | ---: |" + " ---: |" * len(models) + " --- |"]
    for k in keys:
        ref, source = REFERENCE.get(k, ({}, ""))
        cells = [_num(ref[m]) if m in ref else "—" for m in models]
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
