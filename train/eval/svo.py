"""SVO-Probes (Hendricks and Nematzadeh, "Probing Image-Language Transformers for Verb
Understanding", 2021): svo_probes.csv as released (columns sentence, pos_triplet,
neg_triplet, subj_neg, verb_neg, obj_neg, pos_url, neg_url, pos_image_id, neg_image_id). The
release lists image URLs only: download them as IMAGE_ROOT/<image id>.<jpg|jpeg|png|webp>;
rows whose positive or negative image is missing (dead links) are skipped and counted.

Dual-encoder protocol (the pairwise form the literature uses for contrastive models, which
have no match/no-match head): a row is right when s(sentence, positive image) beats
s(sentence, negative image) under the tie rule. Breakdown as the benchmark's notebook: rows with
exactly one of subj_neg / verb_neg / obj_neg (others are left out and counted); `subj`, `verb`,
`obj` accuracy and `avg/acc` pooled over the three, as its "All"."""
import csv
from pathlib import Path

from hn_data.tar_io import IMAGE_EXTS

from .base import Evaluator
from .encode import encode_images, encode_texts
from .scoring import pct, scores_of, top1

TYPES = ("subj", "verb", "obj")
COLUMNS = ("sentence", "subj_neg", "verb_neg", "obj_neg", "pos_image_id", "neg_image_id")


def _flag(value, where):
    v = str(value).strip().lower()
    if v not in ("true", "false", "1", "0"):
        raise ValueError(f"{where}: expected True/False, got {value!r}")
    return v in ("true", "1")


def find_image(root, image_id):
    for ext in IMAGE_EXTS:
        p = Path(root) / f"{image_id}.{ext}"
        if p.is_file():
            return str(p)
    return None


def load_svo(csv_path, image_root):
    """-> (rows [(sentence, pos path, neg path, type)], skipped counts)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"SVO-Probes: {csv_path} does not exist")
    rows, skipped = [], {"missing_image": 0, "not_one_type": 0}
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"SVO-Probes: {csv_path} lacks column(s) {missing}")
        for n, rec in enumerate(reader):
            where = f"{csv_path} row {n + 2}"
            flags = [_flag(rec[f"{t}_neg"], where) for t in TYPES]
            if sum(flags) != 1:
                skipped["not_one_type"] += 1
                continue
            # ids are numbers in the file; a name with a path separator would leave the root
            ids = [str(rec[k]).strip() for k in ("pos_image_id", "neg_image_id")]
            if any(not i or "/" in i or "\\" in i or i.startswith(".") for i in ids):
                raise ValueError(f"{where}: image ids must be plain names, got {ids}")
            pos, neg = (find_image(image_root, i) for i in ids)
            if pos is None or neg is None:
                skipped["missing_image"] += 1
                continue
            rows.append((rec["sentence"], pos, neg, TYPES[flags.index(True)]))
    return rows, skipped


class SvoProbesEvaluator(Evaluator):
    type_name = "svo_probes"

    def __init__(self, csv, image_root, **common):
        super().__init__(**common)
        self.rows, self.skipped = load_svo(csv, image_root)
        if self.limit:  # the first N rows of every type
            seen, kept = {}, []
            for r in self.rows:
                if seen.get(r[3], 0) < self.limit:
                    seen[r[3]] = seen.get(r[3], 0) + 1
                    kept.append(r)
            self.rows = kept
        if not self.rows:
            raise ValueError(f"SVO-Probes: no row of {csv} has both images under {image_root} "
                             f"({self.skipped})")

    def inputs(self):
        return [p for r in self.rows for p in r[1:3]], [r[0] for r in self.rows]

    def score(self, model, tokenizer, preprocess, device="cpu"):
        img = encode_images(model, preprocess, [p for r in self.rows for p in r[1:3]], self.batch_size,
                            device)
        txt = encode_texts(model, tokenizer, [r[0] for r in self.rows], self.batch_size, device)
        hits = [top1(scores_of([img[pos], img[neg]], txt[s], model, image_query=False), 0, self.tie_rule)
                for s, pos, neg, _ in self.rows]
        metrics = {f"{t}/acc": pct(h for h, r in zip(hits, self.rows) if r[3] == t) for t in TYPES}
        metrics["avg/acc"] = pct(hits)
        counts = {"items": len(hits), **{f"skipped_{k}": v for k, v in self.skipped.items()},
                  **{f"{t}/items": sum(r[3] == t for r in self.rows) for t in TYPES}}
        return self.result({k: v for k, v in metrics.items() if v == v}, counts)
