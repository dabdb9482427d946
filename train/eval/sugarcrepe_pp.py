"""SugarCrepe++ (Dumpala et al., "SUGARCREPE++ Dataset: Vision-Language Model Sensitivity to
Semantic and Lexical Alterations", 2024): ROOT/<sub-task>.json, a JSON list of {"id",
"filename", "caption", "caption2", "negative_caption"} for replace_att, replace_obj,
replace_rel, swap_att, swap_obj; COCO val2017 images under IMAGE_ROOT. Two positives P1, P2
that say the same thing in different words, one hard negative N. Per sub-task, as the paper:
  ITT (image-text)  s(I, P1) > s(I, N) and s(I, P2) > s(I, N)
  TOT (text only)   s(P1, P2) > s(P1, N) and s(P1, P2) > s(P2, N)   (text-encoder cosines)
`avg/itt`, `avg/tot`: plain means over the sub-tasks. `limit`: first N items per sub-task."""
from pathlib import Path

import torch

from .base import Evaluator
from .encode import encode_images, encode_texts
from .pairwise import need, read_json, subtask_files
from .scoring import macro, pct, scores_of, top1

SUBTASKS = ("replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")


def load_sugarcrepe_pp(root, image_root, subtasks=None, path_of=None):
    path_of = path_of or (lambda r, rel, where: str(Path(r) / rel))
    items = []
    for name, path in subtask_files(root, subtasks, SUBTASKS, "SugarCrepe++"):
        data = read_json(path, "SugarCrepe++")
        if not isinstance(data, list):
            raise ValueError(f"SugarCrepe++: {path} must be a list of {{filename, caption, caption2, "
                             f"negative_caption}}")
        for n, rec in enumerate(data):
            where = f"{path} item {n}"
            need(rec, ("filename", "caption", "caption2", "negative_caption"), where)
            items.append((path_of(image_root, rec["filename"], where), rec["caption"], rec["caption2"],
                          rec["negative_caption"], name))
    return items


class SugarCrepePPEvaluator(Evaluator):
    type_name = "sugarcrepe_pp"

    def __init__(self, root, image_root, subtasks=None, **common):
        super().__init__(**common)
        items, seen = load_sugarcrepe_pp(root, image_root, subtasks, self.path), {}
        self.items = []
        for it in items:
            seen[it[4]] = seen.get(it[4], 0) + 1
            if self.limit is None or seen[it[4]] <= self.limit:
                self.items.append(it)

    def inputs(self):
        return [it[0] for it in self.items], [t for it in self.items for t in it[1:4]]

    def score(self, model, tokenizer, preprocess, device="cpu"):
        img = encode_images(model, preprocess, [it[0] for it in self.items], self.batch_size, device)
        txt = encode_texts(model, tokenizer, [t for it in self.items for t in it[1:4]], self.batch_size,
                           device)
        r, itt, tot = self.tie_rule, [], []
        text_only = not hasattr(model, "match")  # a cross-encoder has no text-only similarity: no TOT
        for path, p1, p2, neg, _ in self.items:
            s = scores_of([txt[p1], txt[p2], txt[neg]], img[path], model)
            itt.append(top1(s[[0, 2]], 0, r) and top1(s[[1, 2]], 0, r))
            if text_only:
                t = scores_of([txt[p2], txt[neg]], txt[p1])          # s(P1, P2), s(P1, N)
                pn = torch.dot(txt[p2], txt[neg]).reshape(1)          # s(P2, N)
                tot.append(top1(t, 0, r) and top1(torch.cat([t[:1], pn]), 0, r))
        metrics = {}
        for g in dict.fromkeys(it[4] for it in self.items):
            sel = [n for n, it in enumerate(self.items) if it[4] == g]
            metrics[f"{g}/itt"] = pct(itt[n] for n in sel)
            if tot:
                metrics[f"{g}/tot"] = pct(tot[n] for n in sel)
        for m in ("itt", "tot") if tot else ("itt",):
            metrics[f"avg/{m}"] = macro(v for k, v in metrics.items() if k.endswith(f"/{m}"))
        return self.result(metrics, {"items": len(self.items)})
