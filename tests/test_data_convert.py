"""Converters into the candidate-set format: the official SPEC layout, NegCLIP's TSV and a
folder of JSON lines. Each round-trips through our own set reader, and each names file and
line for a malformed record."""
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from data_lib import set_color
from hn_data import convert_jsonl, convert_negclip, convert_spec
from hn_data.convert_common import ConvertError
from hn_data.spec_layout import write_spec
from train.data.decode import decode_set
from train.data.samples import raw_samples

ROOT = Path(__file__).resolve().parents[1]


def read_sets(out):
    m = json.loads((Path(out) / "manifest.json").read_text())
    urls = [str(Path(out) / s) for s in m["shards"]]
    return [decode_set(s, lambda im: im) for s in raw_samples(urls, Counter())], m


def colour(img):
    return img.resize((1, 1)).getpixel((0, 0))


def close(a, b, tol=8):
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def img(n, k):
    return Image.new("RGB", (16, 16), set_color(n, k))


# --- SPEC layout --------------------------------------------------------------------------
def spec_sets():
    sizes = {"count": [3, 3], "existence": [2, 2, 2]}
    out, n = [], 0
    for subset, ks in sizes.items():
        for k in ks:
            out.append(SimpleNamespace(subset=subset, captions=[f"{subset} set{n} c{j}" for j in range(k)],
                                       images=[img(n, j) for j in range(k)], objects=[], meta={}))
            n += 1
    return out


def check_spec_roundtrip(sets, originals):
    assert len(sets) == len(originals)
    by_caps = {tuple(sorted(o.captions)): (i, o) for i, o in enumerate(originals)}
    for s in sets:
        n, o = by_caps[tuple(sorted(s["captions"]))]
        assert s["subset"] == o.subset
        for im, c in zip(s["images"], s["image_caption"]):
            j = o.captions.index(s["captions"][c])  # the caption this image pairs with
            assert close(colour(im), set_color(n, j)), (s["captions"][c], colour(im))


def test_spec_layout_roundtrip_with_shuffled_records(tmp_path):
    originals = spec_sets()
    write_spec(tmp_path / "spec", originals)
    # the converter must not rely on record order or key order
    for sub in ("count", "existence"):
        p = tmp_path / "spec" / sub / "image2text.json"
        recs = json.loads(p.read_text())
        random.Random(0).shuffle(recs)
        for r in recs:
            right = r["keys"][r["label"]]
            random.Random(len(right)).shuffle(r["keys"])
            r["label"] = r["keys"].index(right)
        p.write_text(json.dumps(recs, indent=1))
    m = convert_spec.convert(tmp_path / "spec", tmp_path / "out", sets_per_shard=2)
    assert m["sets"] == 5 and m["images"] == 12 and len(m["shards"]) == 3
    sets, _ = read_sets(tmp_path / "out")
    check_spec_roundtrip(sets, originals)


def test_spec_layout_text2image_only(tmp_path):
    originals = spec_sets()
    write_spec(tmp_path / "spec", originals)
    for sub in ("count", "existence"):
        (tmp_path / "spec" / sub / "image2text.json").unlink()
    convert_spec.convert(tmp_path / "spec", tmp_path / "out", subsets=["count"])
    sets, m = read_sets(tmp_path / "out")
    assert m["subsets"] == {"count": 2}
    check_spec_roundtrip(sets, originals[:2])


@pytest.mark.parametrize("damage,msg", [
    (lambda r: r.update(label=7), "'label' must be an index"),
    (lambda r: r.pop("keys"), "no 'keys' field"),
    (lambda r: r.update(query="images/missing.jpg"), "cannot be read"),
])
def test_spec_malformed_record_names_file_and_line(tmp_path, damage, msg):
    write_spec(tmp_path / "spec", spec_sets())
    p = tmp_path / "spec" / "existence" / "image2text.json"
    recs = json.loads(p.read_text())
    damage(recs[2])
    p.write_text(json.dumps(recs, indent=1))
    text = p.read_text()
    # the third record starts at the third line that opens an object
    line = [i for i, ln in enumerate(text.splitlines(), 1) if ln.strip() == "{"][2]
    with pytest.raises(ConvertError, match=f"image2text.json:{line}: .*{msg}"):
        convert_spec.convert(tmp_path / "spec", tmp_path / "out")


def test_spec_invalid_json_names_line(tmp_path):
    write_spec(tmp_path / "spec", spec_sets())
    p = tmp_path / "spec" / "count" / "image2text.json"
    lines = p.read_text().splitlines()
    lines[5] = lines[5] + " oops"
    p.write_text("\n".join(lines))
    with pytest.raises(ConvertError, match="image2text.json:6: invalid JSON"):
        convert_spec.convert(tmp_path / "spec", tmp_path / "out")


# --- NegCLIP TSV --------------------------------------------------------------------------
def negclip_tsv(tmp_path, rows=None):
    (tmp_path / "imgs").mkdir(exist_ok=True)
    for n in range(4):
        img(n, 0).save(tmp_path / "imgs" / f"{n}.jpg", quality=95)
    rows = rows or [
        ["0", "a dog left of a cat", "imgs/0.jpg", "['a cat left of a dog', 'a dog right of a cat']",
         "[1, 2]"],
        ["1", "two red apples", "imgs/1.jpg", "['two green apples']", "[0]"],
        ["2", "a man riding a horse", "imgs/2.jpg", "['a horse riding a man']", "[3]"],
        ["3", "a \"quoted\" caption", "imgs/3.jpg", "[]", "[]"],  # no negative at all: skipped
    ]
    lines = ["\ttitle\tfilepath\tneg_caption\tneg_image"]
    for r in rows:
        lines.append("\t".join('"' + x.replace('"', '""') + '"' if '"' in x else x for x in r))
    p = tmp_path / "train_neg_clip.tsv"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_negclip_tsv_to_sets(tmp_path):
    m = convert_negclip.convert(negclip_tsv(tmp_path), tmp_path / "out", neg_images=1, neg_captions=1)
    assert m["sets"] == 3 and m["rows_without_negatives"] == 1
    sets, _ = read_sets(tmp_path / "out")
    s0 = sets[0]
    assert s0["captions"] == ["a dog left of a cat", "a cat left of a dog", "a dog right of a cat",
                              "two red apples", "two green apples"]
    assert s0["image_caption"] == [0, 3]
    assert close(colour(s0["images"][0]), set_color(0, 0)) and close(colour(s0["images"][1]), set_color(1, 0))
    assert sets[1]["captions"][:2] == ["two red apples", "two green apples"]
    assert sets[1]["captions"][2] == "a dog left of a cat"


@pytest.mark.parametrize("bad,msg", [
    (["1", "two red apples", "imgs/1.jpg", "['unclosed", "[0]"], "neg_caption is not a Python list literal"),
    (["1", "two red apples", "imgs/1.jpg", "['x']", "[9]"], "neg_image index 9 outside"),
    (["1", "two red apples", "imgs/nope.jpg", "['x']", "[0]"], "cannot be read"),
    (["1", "two red apples", "imgs/1.jpg", "['x']"], "4 fields, the header has 5"),
])
def test_negclip_malformed_row_names_file_and_line(tmp_path, bad, msg):
    rows = [["0", "a dog", "imgs/0.jpg", "['a cat']", "[1]"], bad,
            ["2", "a man", "imgs/2.jpg", "['a horse']", "[0]"]]
    p = negclip_tsv(tmp_path, rows)
    # (a missing image may be met first as another row's negative: the message names both lines)
    with pytest.raises(ConvertError, match=rf"train_neg_clip.tsv:3\b.*{msg}"):
        convert_negclip.convert(p, tmp_path / "out")


# --- JSON lines ---------------------------------------------------------------------------
def jsonl_folder(tmp_path):
    src = tmp_path / "src"
    (src / "more").mkdir(parents=True)
    for n in range(3):
        for k in range(3):
            img(n, k).save(src / f"{n}_{k}.png")
    a = [{"images": ["0_0.png", "0_1.png"], "captions": ["s0 c0", "s0 c1", "s0 text-only"], "subset": "mine"},
         {"images": ["1_0.png", "1_1.png", "1_2.png"], "captions": ["s1 c0", "s1 c1", "s1 c2"],
          "image_caption": [2, 0, 1], "objects": ["cube"], "meta": {"by": "me"}}]
    (src / "a.jsonl").write_text("\n".join(json.dumps(r) for r in a) + "\n\n")
    b = {"images": ["../2_0.png"], "captions": ["s2 c0", "s2 neg"]}
    (src / "more" / "b.jsonl").write_text(json.dumps(b) + "\n")
    return src


def test_jsonl_folder_to_sets(tmp_path):
    m = convert_jsonl.convert(jsonl_folder(tmp_path), tmp_path / "out")
    assert m["sets"] == 3 and m["images"] == 6
    sets, _ = read_sets(tmp_path / "out")
    assert sets[0]["subset"] == "mine" and sets[0]["image_caption"] == [0, 1]
    assert sets[1]["image_caption"] == [2, 0, 1]
    for s, n in zip(sets, range(3)):
        for k, im in enumerate(s["images"]):
            assert close(colour(im), set_color(n, k), tol=1)  # PNG bytes kept: lossless


@pytest.mark.parametrize("line,msg", [
    ('{"images": ["0_0.png"], "captions": ["only one"]}', "at least 2 captions"),
    ('{"images": ["0_0.png"], "captions": ["a", "b"], "image_caption": [5]}', "caption index outside"),
    ('{"images": ["0_0.png"], "captions": ["a", "b"], "colour": 1}', "unknown field"),
    ('{"images": ["gone.png"], "captions": ["a", "b"]}', "cannot be read"),
    ('{"images": ["0_0.png"], "captions": ["a", "b"]', "invalid JSON"),
])
def test_jsonl_malformed_line_names_file_and_line(tmp_path, line, msg):
    src = jsonl_folder(tmp_path)
    p = src / "a.jsonl"
    p.write_text(p.read_text().rstrip("\n") + "\n" + line + "\n")
    with pytest.raises(ConvertError, match=f"a.jsonl:3: .*{msg}"):
        convert_jsonl.convert(src, tmp_path / "out")


def test_converter_cli(tmp_path):
    src = jsonl_folder(tmp_path)
    ok = subprocess.run([sys.executable, "-m", "hn_data.convert_jsonl", f"src={src}",
                         f"out={tmp_path / 'o'}"], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0 and "wrote 3 sets" in ok.stdout, ok.stderr
    (src / "a.jsonl").write_text('{"images": [], "captions": ["a", "b"]}\n')
    bad = subprocess.run([sys.executable, "-m", "hn_data.convert_jsonl", f"src={src}",
                          f"out={tmp_path / 'o2'}"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and f"{src / 'a.jsonl'}:1" in bad.stderr


# --- paths that leave the root ------------------------------------------------------------
def _outside_image(tmp_path):
    """An image beside (not inside) the converter's root, named two ways: climbing out with
    '..' from where records are resolved, and absolute."""
    secret = tmp_path / "elsewhere" / "secret.png"
    secret.parent.mkdir()
    img(9, 0).save(secret)
    return secret


@pytest.mark.parametrize("how", ["dotdot", "absolute"])
def test_converters_refuse_paths_outside_their_root(tmp_path, how):
    secret = _outside_image(tmp_path)
    rel = lambda base: str(secret) if how == "absolute" else os.path.relpath(secret, base)
    # SPEC layout: image paths are relative to the subset folder, the root is --root
    write_spec(tmp_path / "spec", spec_sets()[:1])
    p = tmp_path / "spec" / "count" / "image2text.json"
    recs = json.loads(p.read_text())
    recs[1]["query"] = rel(p.parent)
    p.write_text(json.dumps(recs, indent=1))
    with pytest.raises(ConvertError, match=r"image2text.json:\d+: image path .*secret.png.* leads outside"):
        convert_spec.convert(tmp_path / "spec", tmp_path / "o1")
    assert convert_spec.convert(tmp_path / "spec", tmp_path / "o1", allow_outside_root=True)["images"] == 3
    # NegCLIP: filepath is relative to --image-root
    tsv = negclip_tsv(tmp_path)
    rows = tsv.read_text().replace("imgs/", "").splitlines()
    rows[2] = rows[2].replace("1.jpg", rel(tmp_path / "imgs"))
    tsv.write_text("\n".join(rows) + "\n")
    with pytest.raises(ConvertError,
                       match=r"train_neg_clip.tsv:\d+.*image path .*secret.png.* leads outside"):
        convert_negclip.convert(tsv, tmp_path / "o2", image_root=tmp_path / "imgs")
    assert convert_negclip.convert(tsv, tmp_path / "o2", image_root=tmp_path / "imgs",
                                   allow_outside_root=True)["sets"] == 3
    # JSON lines: paths are relative to each file's folder, the root is --src
    src = jsonl_folder(tmp_path)
    (src / "more" / "b.jsonl").write_text(json.dumps({"images": [rel(src / "more")],
                                                      "captions": ["a", "b"]}) + "\n")
    with pytest.raises(ConvertError, match=r"b.jsonl:1: image path .*secret.png.* leads outside"):
        convert_jsonl.convert(src, tmp_path / "o3")
    assert convert_jsonl.convert(src, tmp_path / "o3", allow_outside_root=True)["sets"] == 3


def test_allow_outside_root_flag_on_the_command_line(tmp_path):
    secret = _outside_image(tmp_path)
    src = jsonl_folder(tmp_path)
    (src / "a.jsonl").write_text(json.dumps({"images": [str(secret)], "captions": ["a", "b"]}) + "\n")
    cmd = [sys.executable, "-m", "hn_data.convert_jsonl", f"src={src}", f"out={tmp_path / 'o'}"]
    refused = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode != 0 and "allow_outside_root=true" in refused.stderr
    allowed = subprocess.run(cmd + ["allow_outside_root=true"], cwd=ROOT, capture_output=True, text=True)
    assert allowed.returncode == 0, allowed.stderr
