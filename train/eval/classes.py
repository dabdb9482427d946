"""Class vocabularies for SPEC's CLS metric (80-way object recognition on the benchmark's own
images) and a caption parser that recovers which objects an image shows.

The official SPEC release holds no class labels, so they come from (in order):
  1. ROOT/<subset>/objects.json  {image path relative to the subset: [class, ...]} if present;
  2. the image's right caption: every vocabulary name (or plural) it mentions, except the
     object a "there is no X" caption denies. An image whose caption names no class is skipped."""
import re
from pathlib import Path

from hn_data.coco import COCO_CLASSES as COCO80  # one list for the engine and the evaluator
from hn_data.plurals import plural  # the engine's own: what it writes, the parser reads


def vocabulary(spec):
    """'coco80' | 'procedural' (our generated data: hn_data.objects) | path to a file, one class a
    line | a list of names."""
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)) or hasattr(spec, "__iter__") and not isinstance(spec, str):
        return [str(c) for c in spec]
    if spec == "coco80":
        return list(COCO80)
    if spec == "procedural":
        from hn_data.objects import CLASSES
        return list(CLASSES)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"class vocabulary {spec!r}: not coco80/procedural and no such file")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"class vocabulary {path} is empty")
    return names


def objects_in_caption(caption: str, vocab):
    """Classes the caption says the image shows. Longest names first so 'hot dog' is not 'dog'."""
    text = " " + re.sub(r"[^a-z ]", " ", caption.lower()) + " "
    denied = re.match(r"\s*there is no (.+?) in the image", caption.lower())
    found = []
    for name in sorted(vocab, key=len, reverse=True):
        for form in {name, plural(name)}:
            hit = f" {form} "
            if hit in text:
                text = text.replace(hit, "  ")
                found.append(name)
                break
    if denied:
        found = [c for c in found if c not in denied.group(1)]
    return found
