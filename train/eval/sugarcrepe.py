"""SugarCrepe: ROOT/<sub-task>.json = {idx: {"filename", "caption", "negative_caption"}} for the
seven sub-tasks (add_att, add_obj, replace_att, replace_obj, replace_rel, swap_att, swap_obj);
images are COCO val2017 under IMAGE_ROOT. Score per sub-task; `avg` is the plain mean of the
sub-tasks (the average papers report, e.g. 73.0 for OpenAI ViT-B/32)."""
from pathlib import Path

from .pairwise import Item, examples_from, need, read_json, score_items
from .scoring import macro, pct

SUBTASKS = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")


def load_sugarcrepe(root, image_root, subtasks=None):
    root, image_root = Path(root), Path(image_root)
    names = list(subtasks or [s for s in SUBTASKS if (root / f"{s}.json").is_file()])
    if not names:
        raise FileNotFoundError(f"SugarCrepe: none of {SUBTASKS} (.json) under {root}")
    items = []
    for name in names:
        path = root / f"{name}.json"
        data = read_json(path, "SugarCrepe")
        if not isinstance(data, dict):
            raise ValueError(f"SugarCrepe: {path} must map idx -> {{filename, caption, negative_caption}}")
        for idx, rec in data.items():
            need(rec, ("filename", "caption", "negative_caption"), f"{path} item {idx}")
            items.append(Item(str(image_root / rec["filename"]), rec["caption"], [rec["negative_caption"]], name))
    return items


class SugarCrepeEvaluator:
    def __init__(self, root, image_root, subtasks=None, batch_size=128, limit=None, examples=0):
        self.items = load_sugarcrepe(root, image_root, subtasks)[:limit]
        self.batch_size, self.n_examples, self.examples = batch_size, examples, []

    def run(self, model, tokenizer, preprocess, device="cpu"):
        hits, scores = score_items(self.items, model, tokenizer, preprocess, device, self.batch_size)
        out = {}
        for g in dict.fromkeys(it.group for it in self.items):
            out[f"{g}/acc"] = pct(h for it, h in zip(self.items, hits) if it.group == g)
        out["avg/acc"] = macro(out.values())
        self.examples = examples_from(self.items, hits, scores, "sugarcrepe", self.n_examples)
        return out
