"""CREPE (Ma et al., "CREPE: Can Vision-Language Foundation Models Reason Compositionally?",
2023): its hard-negative CSVs as released (prod_hard_negatives/<type>/
prod_vg_hard_negs_<type>_complexity_<n>.csv, syst_hard_negatives/syst_vg_hard_negs_*.csv),
columns image_id, x, y, width, height, caption and a hard-negative column holding a Python list
literal (`hard_negs` for productivity; `valid_hard_negs_atom` / `valid_hard_negs_comp` for
systematicity: set `negatives`). Images are Visual Genome's, IMAGE_ROOT/<image_id>.jpg, looked
up in each folder of `image_root` (VG_100K, VG_100K_2) in turn; the image is cropped to the
row's box, as CREPE's retrieval evaluation does (crop: True). Per file: Recall@1 of the caption
among it and its hard negatives (`<name>/acc`), and `avg/acc` over the files. Rows whose image
is missing are skipped and counted; rows without negatives are left out (nothing to rank)."""
import ast
import csv
from pathlib import Path

from .pairwise import Item, ItemEvaluator
from .scoring import first_per_group, macro, pct

COLUMNS = ("image_id", "x", "y", "width", "height", "caption")


def _negatives(text, where):
    try:
        value = ast.literal_eval(text)  # a literal only: never code
    except (ValueError, SyntaxError):
        raise ValueError(f"{where}: hard negatives {text[:60]!r} are not a list literal") from None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: hard negatives must be a list of strings")
    return list(value)


def load_crepe(files, image_roots, negatives="hard_negs"):
    roots = [Path(r) for r in (image_roots if isinstance(image_roots, (list, tuple)) else [image_roots])]
    items, skipped = [], {"missing_image": 0, "no_negatives": 0}
    for name, path in files.items():
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"CREPE: {path} does not exist")
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in (*COLUMNS, negatives) if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"CREPE: {path} lacks column(s) {missing}")
            for n, rec in enumerate(reader):
                where = f"{path} row {n + 2}"
                iid = str(rec["image_id"]).strip()
                if not iid.isdigit():
                    raise ValueError(f"{where}: image_id must be a Visual Genome id, got {iid!r}")
                img = next((str(r / f"{iid}.jpg") for r in roots if (r / f"{iid}.jpg").is_file()), None)
                negs = _negatives(rec[negatives], where)
                if img is None:
                    skipped["missing_image"] += 1
                    continue
                if not negs:
                    skipped["no_negatives"] += 1
                    continue
                box = tuple(float(rec[k]) for k in ("x", "y", "width", "height"))
                items.append(Item((img, box), rec["caption"], negs, name))
    return items, skipped


class CrepeEvaluator(ItemEvaluator):
    type_name = "crepe"

    def __init__(self, files, image_root, negatives="hard_negs", **common):
        super().__init__(**common)
        items, self.skipped = load_crepe(files, image_root, negatives)
        self.items = first_per_group(items, self.limit)  # the first N rows of every file
        if not self.items:
            raise ValueError(f"CREPE: no scorable rows in {list(files.values())} ({self.skipped})")

    def score(self, model, tokenizer, preprocess, device="cpu"):
        hits, scores, groups = self.scored(model, tokenizer, preprocess, device)
        metrics = {f"{g}/acc": pct(h) for g, h in groups.items()}
        metrics["avg/acc"] = macro(metrics.values())
        counts = {"items": len(hits), **{f"skipped_{k}": v for k, v in self.skipped.items()}}
        return self.result(metrics, counts, self.examples(hits, scores, "crepe"))
