"""VALSE (Parcalabescu et al., "VALSE: A Task-Independent Benchmark for Vision and Language
Models Centered on Linguistic Phenomena", 2022): one JSON per piece, {id: {"image_file",
"caption" (str, or a list: its first element), "foil", "mturk": {"foil", "caption", "other"},
...}}; images under IMAGE_ROOT (one folder per piece in the release: pass a {piece: folder}
map, or one folder for all).
Only items at least 2 of 3 annotators found the caption valid for (mturk.caption >= 2) count,
as the benchmark's README prescribes; items without mturk votes are skipped and counted.
The figure is pairwise accuracy acc_r per piece (caption strictly above foil, as VALSE's own
loop); `avg` is the mean over the pieces given (VALSE's average when all 11 are: conf/eval/full.yaml).
`limit` takes the first N valid items of every piece."""
from pathlib import Path

from .pairwise import Item, ItemEvaluator, need, read_json
from .scoring import first_per_group, macro, pct

MIN_CAPTION_VOTES = 2


def load_valse(files, image_roots, path_of=None):
    """files: {piece: json path}; image_roots: {piece: folder} or one folder."""
    path_of = path_of or (lambda r, rel, where: str(Path(r) / rel))
    items, skipped = [], {}
    for piece, path in files.items():
        if isinstance(image_roots, dict) and piece not in image_roots:
            raise ValueError(f"VALSE: image_root has no folder for piece {piece!r} ({sorted(image_roots)})")
        root = Path(image_roots[piece] if isinstance(image_roots, dict) else image_roots)
        data = read_json(path, "VALSE")
        if not isinstance(data, dict):
            raise ValueError(f"VALSE: {path} must map id -> {{image_file, caption, foil, mturk}}")
        skipped[piece] = 0
        for fid, rec in data.items():
            where = f"{path} item {fid}"
            need(rec, ("image_file", "caption", "foil"), where)
            votes = (rec.get("mturk") or {}).get("caption")
            if votes is None or votes < MIN_CAPTION_VOTES:
                skipped[piece] += 1
                continue
            cap = rec["caption"][0] if isinstance(rec["caption"], list) else rec["caption"]
            items.append(Item(path_of(root, rec["image_file"], where), cap, [rec["foil"]], piece))
    return items, skipped


class ValseEvaluator(ItemEvaluator):
    type_name = "valse"

    def __init__(self, files, image_root, **common):
        super().__init__(**common)
        items, self.skipped = load_valse(files, image_root, self.path)
        self.items = first_per_group(items, self.limit)
        self.pieces = list(files)

    def score(self, model, tokenizer, preprocess, device="cpu"):
        hits, scores, groups = self.scored(model, tokenizer, preprocess, device)
        metrics = {f"{p}/acc": pct(groups[p]) for p in self.pieces if p in groups}
        metrics["avg/acc"] = macro(metrics.values())
        counts = {"items": len(hits), "filtered_out": sum(self.skipped.values()),
                  **{f"{p}/items": len(groups.get(p, [])) for p in self.pieces}}
        return self.result(metrics, counts, self.examples(hits, scores, "valse"))
