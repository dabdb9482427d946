"""Where zero-shot classification data comes from: class names, prompt templates and the
image sets (an image folder, CIFAR-10/100's, VOC 2007's and Hateful Memes' releases); zeroshot.py
scores them."""
from pathlib import Path

from hn_data.tar_io import IMAGE_EXTS

from .cifar_format import read_cifar, release_folder as cifar_release
from .hateful_memes_format import DEFAULT_SPLIT, read_hateful_memes, release_folder as memes_release
from .voc_format import read_voc, release_folder as voc_release
from .zeroshot_shipped import canonical, shipped


def file_or_shipped(spec, part, missing):
    """The non-blank lines of file `spec`, or where no such file exists, part `part` (0: class
    names, 1: templates) of the shipped dataset of that name; else FileNotFoundError(missing)."""
    path = Path(spec)
    if not path.is_file() and canonical(spec):
        return list(shipped(spec)[part])
    if not path.is_file():
        raise FileNotFoundError(missing)
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def templates_from(spec):
    if spec in (None, "openai", "simple"):
        from open_clip import zero_shot_metadata as z  # a slow import: only when needed
        named = z.SIMPLE_IMAGENET_TEMPLATES if spec == "simple" else z.OPENAI_IMAGENET_TEMPLATES
        return [t("{}") if callable(t) else t for t in named]
    if isinstance(spec, str):
        spec = file_or_shipped(spec, 1, f"zero-shot templates {spec!r}: not openai/simple, no shipped "
                               "dataset of that name and no such file")
    spec = list(spec)
    if not spec or any("{}" not in t for t in spec):
        raise ValueError(f"zero-shot templates must each contain '{{}}': {spec[:3]}")
    return spec


def read_names(path):
    """A file with one class name a line, "imagenet" (open_clip's ImageNet-1k class names), or
    the name of a shipped dataset (zeroshot_shipped.py) where no file of that name exists."""
    if path == "imagenet":
        from open_clip import zero_shot_metadata as z
        return list(z.IMAGENET_CLASSNAMES)
    return file_or_shipped(path, 0, f"zero-shot classnames file {Path(path)} does not exist (nor is it a "
                           "shipped dataset name)")


def _norm(name):
    return " ".join(name.replace("_", " ").lower().split())


def index_by_name(found, names):
    """[class index of each found name], where every one ('_' read as a space, any case) is one
    of the (distinct) names; else None."""
    wanted = {_norm(n): k for k, n in enumerate(names)}
    if len(wanted) == len(names) and all(_norm(f) in wanted for f in found):
        return [wanted[_norm(f)] for f in found]
    return None


def order_folders(folders, names):
    """The folders in class-index order, folder k holding class names[k]. By name where every
    folder ('_' read as a space, any case) is one of the names: a folder of CIFAR-100's
    `aquarium_fish` then gets its class whatever the sort order; by number where every folder is
    an integer (Flowers-102's `1` ... `102`, which a string sort would put 1, 10, 100, ...);
    otherwise sorted by name (ImageNet's wnid folders, EuroSAT's, Caltech-101's)."""
    index = index_by_name([f.name for f in folders], names)
    if index is not None:
        return [f for _, f in sorted(zip(index, folders))]
    if all(f.name.isdigit() for f in folders):
        return sorted(folders, key=lambda f: int(f.name))
    return sorted(folders)


def load_folder(root, classnames=None, names=None, source="shipped class names"):
    """-> ([(image path, class index)], class names). `names` (a list) or `classnames` (read_names)
    name the classes; without either the folder names do."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"zero-shot image folder {root} does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    names = given_names(classnames, names, len(folders), f"folders in {root}", source)
    if names is None:
        names = [p.name.replace("_", " ") for p in folders]
    else:
        folders = order_folders(folders, names)
    items = [(str(f), c) for c, folder in enumerate(folders) for f in sorted(folder.iterdir())
             if f.suffix.lower().lstrip(".") in IMAGE_EXTS]
    if not items:
        raise FileNotFoundError(f"zero-shot image folder {root}: no images under {root}/<class>/")
    return items, names


def given_names(classnames, names, count, what, source):
    """The class names a user or a shipped dataset gives (None: none given), `count` of them."""
    if names is None and classnames:
        names = read_names(classnames)
    if names is not None and len(names) != count:
        raise ValueError(f"{classnames or source}: {len(names)} class names for {count} {what}")
    return None if names is None else list(names)


def with_names(items, own, classnames, names, where, source):
    """A release's (item, label) list and its own class names -> (items, class names): the given
    names (a user's or a shipped dataset's) are matched to the release's by name where they are
    the same names (CIFAR-100's `aquarium_fish` is "aquarium fish"; VOC's shipped order is not
    the devkit's), else taken in the release's class-index order; without any, its own names."""
    names = given_names(classnames, names, len(own), f"classes in {where}", source)
    if names is None:
        return items, [n.replace("_", " ") for n in own]
    index = index_by_name(own, names)
    if index is not None:
        items = [(x, index[c] if isinstance(c, int) else c.relabel(index)) for x, c in items]
    return items, names


def load_root(root, classnames=None, names=None, source="shipped class names", split=None,
              allow_outside=False):
    """-> ([(image, label)], class names, images skipped as missing or None) of `root`:
    CIFAR-10/100's released pickles (cifar_format.py: in-memory images, class indices), VOC 2007's
    devkit folder (voc_format.py: image paths, multi-label labels), Hateful Memes' release
    (hateful_memes_format.py: image paths, class indices; `split` picks the jsonl file, dev_seen by
    default; its paths are held inside `root` unless `allow_outside`), else an image folder
    ROOT/<class>/ (class indices). `split` is for Hateful Memes only; only it skips images."""
    cifar, voc, memes = cifar_release(root), voc_release(root), memes_release(root)
    if split is not None and not memes:
        raise ValueError(f"zero-shot {root}: `split` picks a Hateful Memes split file (a folder with img/ "
                         "and <split>.jsonl); this root is not one")
    if memes:
        items, own, missing = read_hateful_memes(memes, split or DEFAULT_SPLIT, allow_outside)
        return (*with_names(items, own, classnames, names, memes, source), missing)
    if cifar:
        images, labels, own = read_cifar(cifar)
        return (*with_names(list(zip(images, labels)), own, classnames, names, cifar, source), None)
    if voc:
        return (*with_names(*read_voc(voc), classnames, names, voc, source), None)
    return (*load_folder(root, classnames, names, source), None)
