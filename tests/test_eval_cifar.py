"""CIFAR-10 / CIFAR-100 test sets in their released python-pickle layout, written as Python 2
wrote them (protocol 2, str as byte strings, numpy.core.multiarray's reconstructor): the
zero-shot evaluator reads them (toy oracle encoder: 100; reversed: 0), matches the file's
class names to the shipped ones, and refuses a pickle that names any other global."""
import os
import pickle
import random
import struct

import numpy as np
import pytest

from eval_toy import ToyEncoder, World
from train.eval import build_one
from train.eval.cifar_format import read_cifar
from train.eval.contract import run_suite
from train.eval.zeroshot_shipped import shipped


class Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote it: every str is a byte string (SHORT_BINSTRING /
    BINSTRING), which Python 3 reads back as bytes under encoding="bytes"."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_byte_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_byte_string
    dispatch[str] = save_byte_string


def python2_pickle(obj):
    import io
    buf = io.BytesIO()
    Python2Pickler(buf, protocol=2).dump(obj)
    # numpy 2 names its reconstructor numpy._core.multiarray; the released files the old module
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_cifar(world, root, cifar100=False, shuffle_meta=False):
    """A released-layout folder: one image per class, drawn so the class's prompts describe it."""
    classes, templates = shipped("cifar100" if cifar100 else "cifar10")
    own = [c.replace(" ", "_") for c in classes]  # the release writes aquarium_fish
    if shuffle_meta:  # the file's class order differs from the shipped order
        random.Random(0).shuffle(own)
    rows, labels = [], []
    for k, name in enumerate(own):
        img = world.image([t.format(name.replace("_", " ")) for t in templates], size=32)
        rows.append(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).reshape(-1))
        labels.append(k)
    folder = root / ("cifar-100-python" if cifar100 else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    test = {b"batch_label": b"testing batch 1 of 1", b"data": np.stack(rows),
            b"filenames": [f"{n}_{k}.png".encode() for k, n in enumerate(own)]}
    if cifar100:
        test.update({b"fine_labels": labels, b"coarse_labels": [0] * len(labels)})
        meta = {b"fine_label_names": [n.encode() for n in own], b"coarse_label_names": [b"all"]}
    else:
        test[b"labels"] = labels
        meta = {b"label_names": [n.encode() for n in own], b"num_cases_per_batch": 10000, b"num_vis": 3072}
    (folder / ("test" if cifar100 else "test_batch")).write_bytes(python2_pickle(test))
    (folder / ("meta" if cifar100 else "batches.meta")).write_bytes(python2_pickle(meta))
    return folder


def run(ev, enc):
    return run_suite(ev, enc, enc.tokenizer, enc.preprocess)


def test_the_fixture_is_a_python2_era_pickle(tmp_path):
    folder = write_cifar(World(), tmp_path)
    raw = (folder / "test_batch").read_bytes()
    assert raw[:2] == b"\x80\x02" and b"cnumpy.core.multiarray\n_reconstruct\n" in raw
    assert b"_codecs" not in raw and b"U\x04data" in raw  # byte strings, not Python 3's bytes recipe


def test_cifar10_as_released_scores_known_answers(tmp_path):
    world = World()
    folder = write_cifar(world, tmp_path)
    images, labels, names = read_cifar(folder)
    assert len(images) == 10 and images[0].size == (32, 32) and labels == list(range(10))
    assert names == list(shipped("cifar10")[0])
    for root in (folder, tmp_path):  # the released folder, or torchvision's root holding it
        ev = build_one("c", {"type": "zeroshot", "root": str(root), "dataset": "cifar10"})
        assert ev.names == names and len(ev.items) == 10
        assert run(ev, ToyEncoder(world)).metrics["top1"] == 100.0
        assert run(ev, ToyEncoder(world, "reversed")).metrics["top1"] == 0.0


def test_cifar100_fine_labels_matched_to_the_shipped_names(tmp_path):
    world = World()
    write_cifar(world, tmp_path, cifar100=True, shuffle_meta=True)
    ev = build_one("elevater", {"type": "zeroshot_suite", "datasets": {"cifar100": {"root": str(tmp_path)}}})
    assert ev.parts["cifar100"].names == list(shipped("cifar100")[0])
    assert run(ev, ToyEncoder(world)).metrics["cifar100/top1"] == 100.0
    # without a shipped dataset the file's own names, '_' read as a space
    own = build_one("c", {"type": "zeroshot", "root": str(tmp_path), "templates": ["a {}."]})
    assert "aquarium fish" in own.names and own.names != ev.parts["cifar100"].names


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_naming_another_global_is_refused(tmp_path):
    world = World()
    folder = write_cifar(world, tmp_path)
    marker = tmp_path / "ran"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": RunsACommand(marker)}
    (folder / "test_batch").write_bytes(python2_pickle(evil))
    with pytest.raises(pickle.UnpicklingError, match=r"test_batch names posix\.system; only numpy arrays"):
        build_one("c", {"type": "zeroshot", "root": str(folder), "dataset": "cifar10"})
    assert not marker.exists()
    # numpy itself beyond the array's own three globals is refused too
    (folder / "test_batch").write_bytes(python2_pickle({b"data": np.load}))
    with pytest.raises(pickle.UnpicklingError, match=r"names numpy\.load"):
        read_cifar(folder)


def test_malformed_release_files_are_errors_naming_the_file(tmp_path):
    folder = write_cifar(World(), tmp_path)
    test = folder / "test_batch"
    cases = [({b"data": np.zeros((2, 3072), np.uint8)}, r"test_batch has no 'labels'"),
             ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"rows of 3,072 values"),
             ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, r"2 images but 1 labels"),
             ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, r"label 10 is not a class index"),
             ([1, 2], r"holds a list, not the released dict")]
    for content, message in cases:
        test.write_bytes(python2_pickle(content))
        with pytest.raises(ValueError, match=message):
            read_cifar(folder)
    test.write_bytes(b"\x80\x02}q")  # truncated
    with pytest.raises(ValueError, match="test_batch is not a readable pickle"):
        read_cifar(folder)
    (folder / "batches.meta").unlink()
    test.write_bytes(python2_pickle({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}))
    with pytest.raises(FileNotFoundError, match="batches.meta does not exist"):
        read_cifar(folder)
