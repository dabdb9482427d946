"""PASCAL VOC 2007 classification as released (Everingham et al., "The PASCAL Visual Object
Classes (VOC) Challenge", 2010): the devkit's VOC2007/ folder, JPEGImages/<id>.jpg and, per
class, ImageSets/Main/<class>_test.txt with one "<id> <label>" a line: 1 the image shows the
class, -1 it does not, 0 it shows it only as "difficult" objects.

The task is multi-label (an image shows every class it holds), as in ELEVATER, whose VOC 2007
set is `classification_multilabel` with multi-hot targets. A class's "difficult"-only images
are left out of that class's average precision, as the devkit's VOCevalcls does (neither a hit
nor a false alarm); they still count as showing the class for top-1."""
from dataclasses import dataclass
from pathlib import Path

# the devkit's class order (VOCinit.m)
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")


@dataclass(frozen=True)
class MultiLabel:
    positive: frozenset          # class indices the image shows
    difficult: frozenset = frozenset()  # classes it shows only as difficult objects

    def shown(self):
        return self.positive | self.difficult

    def relabel(self, index):
        return MultiLabel(frozenset(index[c] for c in self.positive),
                          frozenset(index[c] for c in self.difficult))


def release_folder(root):
    """ROOT when it is the devkit's VOC2007/ folder, or VOC2007/ (or VOCdevkit/VOC2007/) in it;
    None where there is none."""
    root = Path(root)
    for folder in (root, root / "VOC2007", root / "VOCdevkit" / "VOC2007"):
        if (folder / "ImageSets" / "Main").is_dir() and (folder / "JPEGImages").is_dir():
            return folder
    return None


def read_voc(folder, split="test"):
    """-> ([(image path, MultiLabel)] in the split's id order, class names in the devkit's order)."""
    folder = Path(folder)
    listed, positive, difficult = {}, {}, {}
    for c, name in enumerate(VOC_CLASSES):
        path = folder / "ImageSets" / "Main" / f"{name}_{split}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"VOC 2007: {path} does not exist (the devkit's per-class image set)")
        for n, line in enumerate(path.read_text().splitlines()):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("1", "-1", "0"):
                raise ValueError(f"VOC 2007: {path} line {n + 1}: expected '<image id> <1|-1|0>', "
                                 f"got {line!r}")
            image_id, label = parts
            listed.setdefault(image_id, set()).add(c)
            if label != "-1":
                (positive if label == "1" else difficult).setdefault(image_id, set()).add(c)
    incomplete = [i for i, classes in listed.items() if len(classes) != len(VOC_CLASSES)]
    if incomplete:
        raise ValueError(f"VOC 2007: {folder}: image {incomplete[0]} is not listed in every class's "
                         f"{split} file")
    items = []
    for image_id in sorted(listed):
        path = folder / "JPEGImages" / f"{image_id}.jpg"
        if not path.is_file():
            raise FileNotFoundError(f"VOC 2007: {path} (listed in {folder}/ImageSets/Main) does not exist")
        label = MultiLabel(frozenset(positive.get(image_id, ())), frozenset(difficult.get(image_id, ())))
        items.append((str(path), label))
    if not items:
        raise ValueError(f"VOC 2007: {folder}/ImageSets/Main lists no {split} images")
    return items, list(VOC_CLASSES)
