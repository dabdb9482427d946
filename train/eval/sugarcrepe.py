"""SugarCrepe (Hsieh et al., "SugarCrepe: Fixing Hackable Benchmarks for Vision-Language
Compositionality", 2023): ROOT/<sub-task>.json = {idx: {"filename", "caption",
"negative_caption"}} for the seven sub-tasks; images are COCO val2017 under IMAGE_ROOT.
Accuracy per sub-task (s(img, caption) > s(img, negative), strict, as its main_eval.py); `avg`
is the plain mean of the sub-tasks (the average papers report, e.g. 73.0 for OpenAI ViT-B/32).
`limit` takes the first N items of every sub-task."""
from pathlib import Path

from .pairwise import Item, ItemEvaluator, need, read_json, subtask_files
from .scoring import first_per_group, macro, pct

SUBTASKS = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")


def load_sugarcrepe(root, image_root, subtasks=None, path_of=None):
    image_root = Path(image_root)
    path_of = path_of or (lambda r, rel, where: str(Path(r) / rel))
    items = []
    for name, path in subtask_files(root, subtasks, SUBTASKS, "SugarCrepe"):
        data = read_json(path, "SugarCrepe")
        if not isinstance(data, dict):
            raise ValueError(f"SugarCrepe: {path} must map idx -> {{filename, caption, negative_caption}}")
        for idx, rec in data.items():
            where = f"{path} item {idx}"
            need(rec, ("filename", "caption", "negative_caption"), where)
            items.append(Item(path_of(image_root, rec["filename"], where), rec["caption"],
                              [rec["negative_caption"]], name))
    return items


class SugarCrepeEvaluator(ItemEvaluator):
    type_name = "sugarcrepe"

    def __init__(self, root, image_root, subtasks=None, **common):
        super().__init__(**common)
        self.items = first_per_group(load_sugarcrepe(root, image_root, subtasks, self.path), self.limit)

    def score(self, model, tokenizer, preprocess, device="cpu"):
        hits, scores, groups = self.scored(model, tokenizer, preprocess, device)
        metrics = {f"{g}/acc": pct(h) for g, h in groups.items()}
        metrics["avg/acc"] = macro(metrics.values())
        counts = {"items": len(hits), **{f"{g}/items": len(h) for g, h in groups.items()}}
        return self.result(metrics, counts, self.examples(hits, scores, "sugarcrepe"))
