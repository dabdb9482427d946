"""Overlap between training data and the benchmarks a model is evaluated on: identical or
near-identical images and identical captions. Fine-tuning on COCO and testing on COCO-based
benchmarks (SugarCrepe, ARO, VALSE's foil-it, the Karpathy test split) mixes splits easily;
this says how much, before the numbers are believed.

    python -m train.eval.contamination --train 'data/default/pairs/pairs-{00000..00007}.tar' \\
        --train 'data/default/sets/sets-{00000..00007}.tar' --eval full [--benchmarks sugarcrepe] \\
        [--max-distance 4] [--out report.json] [suites.sugarcrepe.root=...]

Training shards: pair shards (KEY.jpg/png/webp + KEY.txt) and candidate-set shards (KEY.json
with "captions" + KEY.<k>.png); any tar member that is an image is hashed, every .txt and every
set caption is a caption. Images match when their 64-bit difference hashes (dHash: a 9x8
grey thumbnail, one bit per horizontally adjacent pair) are at most --max-distance bits apart:
re-encoding, resizing and mild recompression stay within a few bits, different photos rarely
do. Captions match when equal after lower-casing, dropping punctuation and collapsing spaces.
Benchmarks list their inputs (Evaluator.inputs); a box crop (ARO) is compared as its whole image.
Corrupt members are skipped and counted. The report is JSON (--out) and a table on stdout."""
import argparse
import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from .shards import IMAGE_EXTS, expand

HASH_BITS = 64


def dhash(img: Image.Image) -> int:
    g = np.asarray(img.convert("L").resize((9, 8), Image.BILINEAR), dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def normalise_caption(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


class HashIndex:
    """Hamming-radius search by the pigeonhole rule: two hashes within r bits agree exactly on
    at least one of r + 1 disjoint bit ranges, so only hashes sharing a range are compared."""

    def __init__(self, radius):
        self.radius = radius
        edges = [int(e) for e in np.linspace(0, HASH_BITS, radius + 2)]  # python ints: 64-bit shifts
        self.ranges = list(zip(edges[:-1], edges[1:]))
        self.tables = [{} for _ in self.ranges]
        self.names = {}

    def _parts(self, h):
        return [(h >> lo) & ((1 << (hi - lo)) - 1) for lo, hi in self.ranges]

    def add(self, h, name):
        if h not in self.names:
            for table, part in zip(self.tables, self._parts(h)):
                table.setdefault(part, []).append(h)
        self.names.setdefault(h, name)

    def near(self, h):
        """-> (distance, training name) of the closest hash within the radius, or None."""
        best = None
        for table, part in zip(self.tables, self._parts(h)):
            for cand in table.get(part, ()):
                d = bin(cand ^ h).count("1")
                if d <= self.radius and (best is None or d < best[0]):
                    best = (d, self.names[cand])
        return best


def index_training(urls_list, radius):
    """-> (HashIndex of images, {normalised caption: training name}, counts)."""
    images, captions = HashIndex(radius), {}
    counts = {"images": 0, "captions": 0, "unreadable": 0}
    for urls in urls_list:
        for path in expand(urls):
            with tarfile.open(path) as tar:
                for m in tar:
                    if not m.isfile():
                        continue
                    name, ext = f"{path}:{m.name}", Path(m.name).suffix.lower().lstrip(".")
                    data = tar.extractfile(m).read()
                    try:
                        if ext in IMAGE_EXTS:
                            images.add(dhash(Image.open(io.BytesIO(data))), name)
                            counts["images"] += 1
                        elif ext == "txt":
                            captions.setdefault(normalise_caption(data.decode("utf-8")), name)
                            counts["captions"] += 1
                        elif ext == "json":
                            rec = json.loads(data)
                            for c in rec.get("captions", []) if isinstance(rec, dict) else []:
                                captions.setdefault(normalise_caption(c), name)
                                counts["captions"] += 1
                    except (OSError, ValueError, UnicodeDecodeError):
                        counts["unreadable"] += 1
    return images, captions, counts


def _open(key):
    if isinstance(key, Image.Image):
        return key
    return Image.open(key if isinstance(key, str) else key[0])


def check(evaluator, images, captions, examples=5):
    keys, texts = evaluator.inputs()
    uniq_keys = list(dict.fromkeys(k if isinstance(k, (str, Image.Image)) else k[0] for k in keys))
    report = {"images": len(uniq_keys), "image_matches": 0, "exact_image_matches": 0, "unreadable": 0,
              "texts": 0, "text_matches": 0, "examples": []}
    for k in uniq_keys:
        try:
            hit = images.near(dhash(_open(k)))
        except OSError:
            report["unreadable"] += 1
            continue
        if hit:
            report["image_matches"] += 1
            report["exact_image_matches"] += hit[0] == 0
            if len(report["examples"]) < examples:
                report["examples"].append({"benchmark": k if isinstance(k, str) else "<in-memory image>",
                                           "training": hit[1], "distance": hit[0]})
    norm = list(dict.fromkeys(normalise_caption(t) for t in texts))
    report["texts"] = len(norm)
    for t in norm:
        if t in captions:
            report["text_matches"] += 1
            if len(report["examples"]) < 2 * examples:
                report["examples"].append({"caption": t, "training": captions[t]})
    return report


def main(argv=None):
    from . import build_one, suite_options
    from .load import eval_config
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", action="append", required=True, help="training shards (brace URLs); repeatable")
    ap.add_argument("--eval", default="full", help="conf/eval/<name>.yaml or a YAML path")
    ap.add_argument("--benchmarks", nargs="*", default=None)
    ap.add_argument("--data-root", default="data/default")
    ap.add_argument("--max-distance", type=int, default=4, help="dHash bits two images may differ by and match")
    ap.add_argument("--out", default=None, help="write the JSON report here")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    if not 0 <= args.max_distance < 16:
        raise SystemExit("contamination: --max-distance must be in 0..15")
    cfg = eval_config(args.eval, args.overrides)
    images, captions, counts = index_training(args.train, args.max_distance)
    print(f"[contamination] training: {counts['images']} images, {counts['captions']} captions "
          f"({counts['unreadable']} unreadable members skipped)", flush=True)
    report = {"training": counts, "max_distance": args.max_distance, "benchmarks": {}}
    for name in args.benchmarks or list(cfg.benchmarks):
        ev = build_one(name, suite_options(cfg, name), cfg.batch_size, 0, args.data_root)
        report["benchmarks"][name] = check(ev, images, captions)
    lines = ["| benchmark | images | matching images (exact) | captions | matching captions |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in report["benchmarks"].items():
        lines.append(f"| {name} | {r['images']} | {r['image_matches']} ({r['exact_image_matches']}) | {r['texts']} | "
                     f"{r['text_matches']} |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
        print(f"[contamination] wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
