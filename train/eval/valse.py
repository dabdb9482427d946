"""VALSE: one JSON per piece, {id: {"image_file", "caption" (str, or a list: its first element),
"foil", "mturk": {"foil": n, "caption": n, "other": n}, ...}}; images under IMAGE_ROOT (one
folder per piece in the release: pass a {piece: folder} map, or one folder for all).
Only items at least 2 of 3 annotators found the caption valid for (mturk.caption >= 2) count,
as the benchmark's own evaluation does; items without mturk votes are skipped and counted.
The figure is pairwise accuracy acc_r per piece; `avg` is the mean over pieces."""
from pathlib import Path

from .pairwise import Item, examples_from, need, read_json, score_items
from .scoring import macro, pct

MIN_CAPTION_VOTES = 2


def load_valse(files, image_roots):
    """files: {piece: json path}; image_roots: {piece: folder} or one folder."""
    items, skipped = [], {}
    for piece, path in files.items():
        root = Path(image_roots[piece] if isinstance(image_roots, dict) else image_roots)
        data = read_json(path, "VALSE")
        if not isinstance(data, dict):
            raise ValueError(f"VALSE: {path} must map id -> {{image_file, caption, foil, mturk}}")
        skipped[piece] = 0
        for fid, rec in data.items():
            need(rec, ("image_file", "caption", "foil"), f"{path} item {fid}")
            votes = (rec.get("mturk") or {}).get("caption")
            if votes is None or votes < MIN_CAPTION_VOTES:
                skipped[piece] += 1
                continue
            cap = rec["caption"][0] if isinstance(rec["caption"], list) else rec["caption"]
            items.append(Item(str(root / rec["image_file"]), cap, [rec["foil"]], piece))
    return items, skipped


class ValseEvaluator:
    def __init__(self, files, image_root, batch_size=128, limit=None, examples=0):
        self.items, self.skipped = load_valse(files, image_root)
        self.items = self.items[:limit]
        self.pieces = list(files)
        self.batch_size, self.n_examples, self.examples = batch_size, examples, []

    def run(self, model, tokenizer, preprocess, device="cpu"):
        hits, scores = score_items(self.items, model, tokenizer, preprocess, device, self.batch_size)
        out = {}
        for p in self.pieces:
            h = [x for it, x in zip(self.items, hits) if it.group == p]
            if h:
                out[f"{p}/acc"] = pct(h)
        out["avg/acc"] = macro(out.values())
        out["filtered_out"] = float(sum(self.skipped.values()))
        self.examples = examples_from(self.items, hits, scores, "valse", self.n_examples)
        return out
