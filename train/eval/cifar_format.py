"""CIFAR-10 and CIFAR-100 test sets as released (Krizhevsky, "Learning Multiple Layers of
Features from Tiny Images", 2009), the python version torchvision also reads:
  cifar-10-batches-py/test_batch    {b'data': uint8 (N, 3072), b'labels': [int], ...}
  cifar-10-batches-py/batches.meta  {b'label_names': [bytes], ...}
  cifar-100-python/test             {b'data': ..., b'fine_labels': [int], ...}
  cifar-100-python/meta             {b'fine_label_names': [bytes], ...}
Each row of `data` is 1,024 red, then 1,024 green, then 1,024 blue values of a 32x32 image,
row-major.

The files are Python 2 pickles, and unpickling runs whatever callables a file names. They are
read with an unpickler that resolves only the globals a pickled numpy array needs (its
reconstructor, ndarray, dtype) and refuses every other one, so a crafted file cannot run code;
everything else in them is plain dicts, lists, bytes, str and ints."""
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

try:  # numpy 2 moved the module; the released files name numpy.core.multiarray
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct

# folder name -> (test file, meta file, labels key, names key)
LAYOUTS = {"cifar-10-batches-py": ("test_batch", "batches.meta", "labels", "label_names"),
           "cifar-100-python": ("test", "meta", "fine_labels", "fine_label_names")}

SAFE_GLOBALS = {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
                ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
                ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}


class RefusedGlobal(pickle.UnpicklingError):
    pass


class _ArraysOnly(pickle.Unpickler):
    def __init__(self, file, path):
        super().__init__(file, encoding="bytes")  # Python 2 str -> bytes, as the release expects
        self.path = path

    def find_class(self, module, name):
        if (module, name) not in SAFE_GLOBALS:
            raise RefusedGlobal(
                f"CIFAR: {self.path} names {module}.{name}; only numpy arrays are allowed in the released "
                "files, so it is not read (not the release, or tampered with)")
        return SAFE_GLOBALS[(module, name)]


def read_pickle(path):
    """The released file's dict, its keys as str."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR: {path} does not exist")
    with path.open("rb") as f:
        try:
            data = _ArraysOnly(f, path).load()
        except RefusedGlobal:
            raise
        except Exception as e:  # truncated or not a pickle at all
            raise ValueError(f"CIFAR: {path} is not a readable pickle ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"CIFAR: {path} holds a {type(data).__name__}, not the released dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in data.items()}


def _field(data, key, path):
    if key not in data:
        raise ValueError(f"CIFAR: {path} has no {key!r} (keys: {sorted(map(str, data))})")
    return data[key]


def release_folder(root):
    """The released folder at ROOT, or in it (torchvision's `root`); None where there is none."""
    root = Path(root)
    if root.name in LAYOUTS and root.is_dir():
        return root
    found = [root / name for name in LAYOUTS if (root / name).is_dir()]
    if len(found) > 1:
        raise ValueError(f"CIFAR: {root} holds both {found[0].name} and {found[1].name}; point root at one")
    return found[0] if found else None


def read_cifar(folder):
    """-> ([32x32 RGB PIL image], [class index], [class name]) of the released test set."""
    folder = Path(folder)
    test_name, meta_name, labels_key, names_key = LAYOUTS[folder.name]
    test, meta = folder / test_name, folder / meta_name
    data = read_pickle(test)
    pixels, labels = _field(data, "data", test), _field(data, labels_key, test)
    own = _field(read_pickle(meta), names_key, meta)
    names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in own]
    if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.ndim == 2
            and pixels.shape[1] == 3 * 32 * 32):
        raise ValueError(f"CIFAR: {test} 'data' must be a uint8 array of rows of 3,072 values, got "
                         f"{getattr(pixels, 'dtype', type(pixels).__name__)} {getattr(pixels, 'shape', '')}")
    labels = list(labels)
    if len(labels) != len(pixels):
        raise ValueError(f"CIFAR: {test} has {len(pixels)} images but {len(labels)} labels")
    bad = [c for c in labels if not (isinstance(c, (int, np.integer)) and 0 <= c < len(names))]
    if bad:
        raise ValueError(f"CIFAR: {test} label {bad[0]!r} is not a class index of the {len(names)} in {meta}")
    images = [Image.fromarray(row.reshape(3, 32, 32).transpose(1, 2, 0), "RGB") for row in pixels]
    return images, [int(c) for c in labels], names
