"""Write candidate sets as a benchmark folder in the official SPEC layout:
ROOT/<subset>/image2text.json, ROOT/<subset>/text2image.json, images under the subset folder."""
import io
import json
from collections import defaultdict
from pathlib import Path

# JPEG as the official benchmark ships, but with full-resolution chroma (subsampling=0,
# 4:4:4): Pillow's default 4:2:0 halves colour resolution, and at 64 px that smears a
# saturated object's colour 1-2 px into the background, enough to merge counted objects.
JPEG_OPTIONS = {"quality": 95, "subsampling": 0}


def spec_jpeg_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **JPEG_OPTIONS)
    return buf.getvalue()


def write_spec(root, sets):
    root = Path(root)
    per_subset = defaultdict(lambda: ([], []))
    for n, cs in enumerate(sets):
        folder = root / cs.subset / "images"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for k, img in enumerate(cs.images):
            rel = f"images/{n:06d}_{k}.jpg"
            (root / cs.subset / rel).write_bytes(spec_jpeg_bytes(img))
            paths.append(rel)
        i2t, t2i = per_subset[cs.subset]
        for k, rel in enumerate(paths):
            i2t.append({"query": rel, "keys": list(cs.captions), "label": k})
            t2i.append({"query": cs.captions[k], "keys": list(paths), "label": k})
    for subset, (i2t, t2i) in per_subset.items():
        (root / subset / "image2text.json").write_text(json.dumps(i2t, indent=1))
        (root / subset / "text2image.json").write_text(json.dumps(t2i, indent=1))
    return sorted(per_subset)
