"""Hateful Memes as Facebook AI distributes it (Kiela et al., "The Hateful Memes Challenge:
Detecting Hate Speech in Multimodal Memes", 2020): one folder holding img/<id>.png and the split
files train.jsonl, dev_seen.jsonl, dev_unseen.jsonl, test_seen.jsonl, test_unseen.jsonl, each
line {"id": 42953, "img": "img/42953.png", "label": 0, "text": "..."} with label 0 (not
hateful) or 1 (hateful).

Zero-shot classification scores the meme image alone, as CLIP and ELEVATER do (the caption is
printed in the picture); `text` is not read. ELEVATER's test set is 500 images, the size of
dev_seen, the release's only labelled split of 500, so that is the default split. The phase-1
test files carry no labels: such a split is refused rather than scored against nothing.
A path in `img` that is absolute or climbs out of the folder is refused (paths.py); a listed
image that is not there is skipped and counted."""
from pathlib import Path

from .jsonl import jsonl_records
from .paths import inside

SPLITS = ("train", "dev_seen", "dev_unseen", "test_seen", "test_unseen")
DEFAULT_SPLIT = "dev_seen"
CLASSES = ("not hateful", "hateful")  # the release's label 0 and 1


def release_folder(root):
    """ROOT when it holds img/ and at least one of the release's split files; else None."""
    root = Path(root)
    if (root / "img").is_dir() and any((root / f"{s}.jsonl").is_file() for s in SPLITS):
        return root
    return None


def split_file(folder, split):
    if not isinstance(split, str) or Path(split).name != split or split in ("", ".", ".."):
        raise ValueError(f"Hateful Memes: split {split!r} must be the name of a split file in {folder} "
                         f"(one of {', '.join(SPLITS)})")
    path = Path(folder) / f"{split}.jsonl"
    if not path.is_file():
        present = sorted(p.stem for p in Path(folder).glob("*.jsonl"))
        raise FileNotFoundError(f"Hateful Memes: {path} does not exist (splits in {folder}: "
                                f"{', '.join(present) or 'none'})")
    return path


def read_hateful_memes(folder, split=DEFAULT_SPLIT, allow_outside=False):
    """-> ([(image path, class index)] in the file's order, class names, images skipped as missing)."""
    folder = Path(folder)
    path = split_file(folder, split)
    items, missing = [], 0
    for where, rec in jsonl_records(path, "Hateful Memes", ("img",)):
        if "label" not in rec:
            raise ValueError(f"{where} has no 'label': {path.name} is a split released without labels; "
                             "choose a labelled one (dev_seen, the default; dev_unseen; train)")
        label = rec["label"]
        if type(label) is not int or label not in (0, 1):  # bool is an int, and not a label here
            raise ValueError(f"{where}: label {label!r} is not 0 (not hateful) or 1 (hateful)")
        if not isinstance(rec["img"], str):
            raise ValueError(f"{where}: img {rec['img']!r} is not a path")
        image = inside(folder, rec["img"], where, allow_outside)
        if not Path(image).is_file():
            missing += 1
            continue
        items.append((image, label))
    if not items:
        raise ValueError(f"Hateful Memes: {path} lists no image that exists under {folder} "
                         f"({missing} missing)")
    return items, list(CLASSES), missing
