"""ARO VG-Relation / VG-Attribution: a JSON list of {"image_path", "bbox_x", "bbox_y", "bbox_w",
"bbox_h", "true_caption", "false_caption", "relation_name" | "attributes": [a, b]}; images under
IMAGE_ROOT. As the benchmark's code does: the image is cropped to the box; VG-Relation's figure is
the macro mean over relations, leaving out the relations ARO's replication notebook lists as
symmetric (swapping their arguments need not make the caption false); VG-Attribution's is the
macro mean over attribute pairs ("a_b") that have at least 25 items. Left-out groups still count
in `micro`.
The original takes argmax over [false, true], so a tie picks the false caption: `strict` and
`first` (with the true caption second, right_pos=1) agree."""
from pathlib import Path

from .pairwise import Item, ItemEvaluator, need, read_json
from .scoring import macro, pct

MIN_ATTRIBUTE_PAIR = 25
# Relations excluded from VG-Relation's macro accuracy (ARO's "Replicate ARO!" notebook).
SYMMETRIC_RELATIONS = frozenset([
    "adjusting", "attached to", "between", "bigger than", "biting", "boarding", "brushing", "chewing",
    "cleaning", "climbing", "close to", "coming from", "coming out of", "contain", "crossing", "dragging",
    "draped over", "drinking", "drinking from", "driving", "driving down", "driving on", "eating from",
    "eating in", "enclosing", "exiting", "facing", "filled with", "floating in", "floating on", "flying",
    "flying above", "flying in", "flying over", "flying through", "full of", "going down", "going into",
    "going through", "grazing in", "growing in", "growing on", "guiding", "hanging from", "hanging in",
    "hanging off", "hanging over", "higher than", "holding onto", "hugging", "in between", "jumping off",
    "jumping on", "jumping over", "kept in", "larger than", "leading", "leaning over", "leaving", "licking",
    "longer than", "looking in", "looking into", "looking out", "looking over", "looking through",
    "lying next to", "lying on top of", "making", "mixed with", "mounted on", "moving", "on the back of",
    "on the edge of", "on the front of", "on the other side of", "opening", "painted on", "parked at",
    "parked beside", "parked by", "parked in", "parked in front of", "parked near", "parked next to",
    "perched on", "petting", "piled on", "playing", "playing in", "playing on", "playing with", "pouring",
    "reaching for", "reading", "reflected on", "riding on", "running in", "running on", "running through",
    "seen through", "sitting behind", "sitting beside", "sitting by", "sitting in front of", "sitting near",
    "sitting next to", "sitting under", "skiing down", "skiing on", "sleeping in", "sleeping on",
    "smiling at", "sniffing", "splashing", "sprinkled on", "stacked on", "standing against",
    "standing around", "standing behind", "standing beside", "standing in front of", "standing near",
    "standing next to", "staring at", "stuck in", "surrounding", "swimming in", "swinging", "talking to",
    "topped with", "touching", "traveling down", "traveling on", "tying", "typing on", "underneath",
    "wading in", "waiting for", "walking across", "walking by", "walking down", "walking next to",
    "walking through", "working in", "working on", "worn on", "wrapped around", "wrapped in", "by", "of",
    "near", "next to", "with", "beside", "on the side of", "around",
])


def load_aro(path, image_root, kind, path_of=None):
    if kind not in ("relation", "attribution"):
        raise ValueError(f"ARO kind must be relation or attribution, got {kind!r}")
    path_of = path_of or (lambda r, rel, where: str(Path(r) / rel))
    data = read_json(path, f"ARO VG-{kind}")
    if not isinstance(data, list):
        raise ValueError(f"ARO: {path} must be a JSON list")
    group_key = "relation_name" if kind == "relation" else "attributes"
    items = []
    for n, rec in enumerate(data):
        where = f"{path} item {n}"
        need(rec, ("image_path", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "true_caption", "false_caption",
                   group_key),
             where)
        group = rec[group_key] if kind == "relation" else f"{rec['attributes'][0]}_{rec['attributes'][1]}"
        box = tuple(rec[k] for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
        items.append(Item((path_of(image_root, rec["image_path"], where), box), rec["true_caption"],
                          [rec["false_caption"]], group, right_pos=1))
    return items


class _AroEvaluator(ItemEvaluator):
    kind = None

    def __init__(self, ann, image_root, **common):
        super().__init__(**common)
        self.items = load_aro(ann, image_root, self.kind, self.path)[:self.limit]

    def score(self, model, tokenizer, preprocess, device="cpu"):
        hits, scores, groups = self.scored(model, tokenizer, preprocess, device)
        if self.kind == "attribution":
            kept = {g: pct(h) for g, h in groups.items() if len(h) >= MIN_ATTRIBUTE_PAIR}
        else:
            kept = {g: pct(h) for g, h in groups.items() if g not in SYMMETRIC_RELATIONS}
        metrics = {"macro/acc": macro(kept.values()), "micro/acc": pct(hits),
                   **{f"{self.kind}/{g}/acc": v for g, v in kept.items()}}
        counts = {"items": len(hits), "groups_kept": len(kept), "groups": len(groups)}
        return self.result(metrics, counts, self.examples(hits, scores, f"aro_{self.kind}"))


class AroRelationEvaluator(_AroEvaluator):
    type_name, kind = "aro_relation", "relation"


class AroAttributionEvaluator(_AroEvaluator):
    type_name, kind = "aro_attribution", "attribution"
