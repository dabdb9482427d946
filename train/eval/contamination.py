"""Overlap between training data and the benchmarks a model is evaluated on: identical or
near-identical images and identical captions. Fine-tuning on COCO and testing on COCO-based
benchmarks (SugarCrepe, ARO, VALSE's foil-it, the Karpathy test split) mixes splits easily;
this says how much, before the numbers are believed.

    python -m train.eval.contamination \\
        'train=[data/default/pairs/pairs-{000000..000007}.tar,data/default/sets/sets-{000000..000007}.tar]' \\
        eval=full [benchmarks=[sugarcrepe]] [max_distance=6] [out=report.json] [suites.sugarcrepe.root=...]

Training shards: pair shards (KEY.jpg/png/webp + KEY.txt) and candidate-set shards (KEY.json
with "captions" + KEY.<k>.png); any tar member that is an image is hashed, every .txt and every
set caption is a caption. Images match when their 63-bit perceptual hashes (pHash: the low
DCT frequencies of a 32x32 grey thumbnail against their median) are at most max_distance bits
apart: re-encoding, resizing and mild recompression stay within a few bits (0-8 measured on
our 64-px images), different images of the same generator 18 or more, yet among thousands of
flat-background images some different ones still come close; so every hash match is confirmed
on the pixels: 32x32 grey thumbnails within max_pixel_diff (mean absolute difference, default
4 of 255; re-encoded copies measured at most 1.0, different images of our generator 13 or
more). Captions match when equal after lower-casing, dropping punctuation and collapsing spaces.
Benchmarks list their inputs (Evaluator.inputs); a box crop (ARO) is compared as its whole image.
Corrupt members are skipped and counted. The report is JSON (`out`) and a table on stdout."""
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np
from PIL import Image

from hn_data.cli import ConfigError, command, setting
from hn_data.tar_io import IMAGE_EXTS, local_entries

from .evaluate import EvalConfigKeys, command_eval_config
from .shards import expand

HASH_BITS = 64


_N = 32
# DCT-II basis: row k holds cos(pi * (2x + 1) * k / 2N); D @ g @ D.T is the (unscaled) 2-D DCT of g
_DCT = np.cos(np.pi * (2 * np.arange(_N)[None, :] + 1) * np.arange(_N)[:, None] / (2 * _N))


def phash(img: Image.Image) -> int:
    """63-bit perceptual hash: the 8x8 lowest DCT frequencies of a 32x32 grey thumbnail (the DC
    term left out), one bit each for above / below their median. Low frequencies survive
    re-encoding and resizing; unlike a difference hash, flat regions (where neighbouring pixels
    differ by noise) do not flip bits."""
    g = np.asarray(img.convert("L").resize((_N, _N), Image.LANCZOS), dtype=np.float64)
    low = (_DCT @ g @ _DCT.T)[:8, :8].flatten()[1:]
    bits = low > np.median(low)
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
        self.names.setdefault(h, []).append(name)

    def within(self, h):
        """-> [(distance, training name)] of every hash within the radius, nearest first."""
        found = {}
        for table, part in zip(self.tables, self._parts(h)):
            for cand in table.get(part, ()):
                d = bin(cand ^ h).count("1")
                if d <= self.radius:
                    for name in self.names[cand]:
                        found[name] = d
        return sorted((d, n) for n, d in found.items())

    def near(self, h):
        """-> (distance, training name) of the closest hash within the radius, or None."""
        hits = self.within(h)
        return hits[0] if hits else None


def thumbnail(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L").resize((32, 32), Image.BILINEAR), dtype=np.float64)


def index_training(urls_list, radius):
    """-> (HashIndex of images, {normalised caption: training name}, counts). Each image's name
    also maps (images.where) to its bytes' place in its tar, so a hash match can be confirmed
    against the pixels later without holding any image in memory."""
    images, captions = HashIndex(radius), {}
    images.where = {}
    counts = {"images": 0, "captions": 0, "unreadable": 0}

    def damaged():  # a damaged member of a real crawl is skipped and counted, as an undecodable one
        counts["unreadable"] += 1
    for urls in urls_list:
        for path in expand(urls):
            for member, offset, data in local_entries(path, damaged):
                name, ext = f"{path}:{member}", Path(member).suffix.lower().lstrip(".")
                try:
                    if ext in IMAGE_EXTS:
                        images.add(phash(Image.open(io.BytesIO(data))), name)
                        images.where[name] = (path, offset, len(data))
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


def _training_image(images, name):
    path, offset, size = images.where[name]
    with open(path, "rb") as f:  # plain tar: the member's bytes sit at its data offset
        f.seek(offset)
        return Image.open(io.BytesIO(f.read(size)))


def confirm(images, img, h, max_pixel_diff):
    """The nearest hash match whose 32x32 grey thumbnail is within max_pixel_diff (mean absolute
    difference, 0-255) of the benchmark image's: a hash alone also pairs different images of
    similar layout (flat backgrounds, one object), the pixels tell them apart."""
    t = thumbnail(img)
    for d, name in images.within(h):
        diff = float(np.abs(thumbnail(_training_image(images, name)) - t).mean())
        if diff <= max_pixel_diff:
            return d, name, diff
    return None


def check(evaluator, images, captions, examples=5, max_pixel_diff=4.0):
    keys, texts = evaluator.inputs()
    seen, uniq_keys = set(), []
    for k in keys:
        k = k if isinstance(k, (str, Image.Image)) else k[0]  # a (path, box) crop: its whole image
        marker = k if isinstance(k, str) else id(k)          # in-memory images (shards) are not hashable
        if marker not in seen:
            seen.add(marker)
            uniq_keys.append(k)
    report = {"images": len(uniq_keys), "image_matches": 0, "exact_image_matches": 0, "unreadable": 0,
              "texts": 0, "text_matches": 0, "examples": []}
    for k in uniq_keys:
        try:
            img = _open(k)
            hit = confirm(images, img, phash(img), max_pixel_diff)
        except OSError:
            report["unreadable"] += 1
            continue
        if hit:
            report["image_matches"] += 1
            report["exact_image_matches"] += hit[0] == 0
            if len(report["examples"]) < examples:
                report["examples"].append({"benchmark": k if isinstance(k, str) else "<in-memory image>",
                                           "training": hit[1], "distance": hit[0],
                                           "pixel_diff": round(hit[2], 2)})
    norm = list(dict.fromkeys(normalise_caption(t) for t in texts))
    report["texts"] = len(norm)
    for t in norm:
        if t in captions:
            report["text_matches"] += 1
            if len(report["examples"]) < 2 * examples:
                report["examples"].append({"caption": t, "training": captions[t]})
    return report


@dataclass
class ContaminationCommand(EvalConfigKeys):
    eval: str = setting("full", "conf/eval/<name>.yaml or a YAML path")
    train: List[str] = setting(help="training shards (brace URLs), e.g. train=[pairs-{000000..000007}.tar]")
    max_distance: int = setting(6, "pHash bits two images may differ by and match (0..15)")
    max_pixel_diff: float = setting(4.0, "mean absolute 32x32 grey difference (0-255) a hash match must "
                                    "also be within")
    out: Optional[str] = setting(None, "write the JSON report here")


def check_keys(args: ContaminationCommand):
    if not 0 <= args.max_distance < 16:
        raise ConfigError(f"invalid value max_distance={args.max_distance}: must be in 0..15")
    if not args.train:
        raise ConfigError("train=[...] lists no training shards")


def run(args: ContaminationCommand):
    from . import build_one, suite_options
    check_keys(args)
    cfg = command_eval_config(args)
    images, captions, counts = index_training(args.train, args.max_distance)
    print(f"[contamination] training: {counts['images']} images, {counts['captions']} captions "
          f"({counts['unreadable']} unreadable members skipped)", flush=True)
    report = {"training": counts, "max_distance": args.max_distance, "max_pixel_diff": args.max_pixel_diff,
              "benchmarks": {}}
    for name in args.benchmarks or list(cfg.benchmarks):
        ev = build_one(name, suite_options(cfg, name), cfg.batch_size, 0, args.data_root)
        report["benchmarks"][name] = check(ev, images, captions, max_pixel_diff=args.max_pixel_diff)
    lines = ["| benchmark | images | matching images (exact) | captions | matching captions |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in report["benchmarks"].items():
        lines.append(f"| {name} | {r['images']} | {r['image_matches']} ({r['exact_image_matches']}) | "
                     f"{r['texts']} | "
                     f"{r['text_matches']} |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
        print(f"[contamination] wrote {args.out}")
    return report


main = command(ContaminationCommand, run, prog="hnclip-contamination", doc=__doc__, check=check_keys)


if __name__ == "__main__":
    main()
