"""Tiny benchmarks written in each benchmark's official file format, with toy images whose right
answers an `eval_toy.World` knows (tests; also a demo of each layout). Every writer returns what the
matching evaluator needs and, where the benchmark filters, items the filter must drop: those are
built so that counting them would make the oracle wrong."""
import io
import json
from pathlib import Path

from PIL import Image

from eval_toy import World, colour
from hn_data.set_format import png_bytes
from hn_data.tar_io import TarWriter


def _save(img, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def write_spec(world: World, root, subsets=(("absolute_size", 3), ("count", 4)), sets=3,
               classes=("apple", "kite")):
    """Official SPEC layout; captions name a class so CLS can parse them; images also carry the
    class prompt so the oracle gets CLS right."""
    root = Path(root)
    for subset, k in subsets:
        i2t, t2i = [], []
        for s in range(sets):
            cls = classes[s % len(classes)]
            caps = [f"{subset} set {s} option {j} of the {cls}" for j in range(k)]
            paths = []
            for j in range(k):
                rel = f"images/{s:03d}_{j}.png"
                _save(world.image([caps[j], f"a photo of a {cls}."]), root / subset / rel)
                paths.append(rel)
            i2t += [{"query": paths[j], "keys": caps, "label": j} for j in range(k)]
            t2i += [{"query": caps[j], "keys": paths, "label": j} for j in range(k)]
        (root / subset / "image2text.json").write_text(json.dumps(i2t))
        (root / subset / "text2image.json").write_text(json.dumps(t2i))
    return {"root": str(root), "classes": list(classes)}


def write_sugarcrepe(world, root, per_task=3):
    root = Path(root)
    images = root / "val2017"
    for task in ("add_att", "replace_rel", "swap_obj"):
        data = {}
        for i in range(per_task):
            cap, neg = f"{task} caption {i}", f"{task} negative {i}"
            name = f"{task}_{i:012d}.jpg".replace(".jpg", ".png")
            _save(world.image([cap]), images / name)
            data[str(i)] = {"filename": name, "caption": cap, "negative_caption": neg}
        (root / f"{task}.json").write_text(json.dumps(data))
    return {"root": str(root), "image_root": str(images)}


def write_aro(world, root, kind, big=25, small=3, symmetric=0):
    """One group with `big` items (kept by VG-Attribution's >= 25 rule), one with `small` whose
    annotations are swapped (the oracle gets them wrong): macro must ignore them for attribution
    and count them for relation; and (relation only) `symmetric` swapped items of the symmetric
    relation "next to", which VG-Relation's macro leaves out. The image outside the box is another
    image's colour, so scoring the uncropped image breaks the oracle."""
    root = Path(root)
    recs = []
    for g, (n, swapped) in enumerate(((big, False), (small, True), (symmetric, True))):
        for i in range(n):
            true, false = f"{kind} g{g} true {i}", f"{kind} g{g} false {i}"
            inner = world.image([false if swapped else true])
            outer_id = len(world.image_tags)
            world.image([f"background {g} {i}"])
            canvas = Image.new("RGB", (40, 40), colour(outer_id))
            canvas.paste(inner.resize((16, 12)), (10, 20))
            name = f"{kind}_{g}_{i}.png"
            _save(canvas, root / "images" / name)
            rec = {"image_id": str(i), "image_path": name, "bbox_x": 10, "bbox_y": 20, "bbox_w": 16,
                   "bbox_h": 12,
                   "true_caption": true, "false_caption": false}
            if kind == "relation":
                rec["relation_name"] = "next to" if g == 2 else f"rel{g}"
            else:
                rec["attributes"] = [f"colour{g}", f"shape{g}"]
            recs.append(rec)
    ann = root / f"visual_genome_{kind}.json"
    ann.write_text(json.dumps(recs))
    return {"ann": str(ann), "image_root": str(root / "images"), "n_big": big, "n_small": small}


def write_valse(world, root, per_piece=3):
    """Two pieces; each adds one item with mturk.caption = 1 whose caption is really the foil
    (the annotator filter must drop it), one without mturk (dropped too)."""
    root = Path(root)
    files = {}
    for piece in ("existence", "counting-hard"):
        data = {}
        for i in range(per_piece + 2):
            cap, foil = f"{piece} caption {i}", f"{piece} foil {i}"
            bad = i >= per_piece
            name = f"{piece}_{i}.png"
            _save(world.image([foil if bad else cap]), root / "images" / name)
            rec = {"dataset": "toy", "image_file": name, "caption": [cap] if i % 2 else cap, "foil": foil,
                   "mturk": {"foil": 0, "caption": 3 if not bad else 1, "other": 0}}
            if i == per_piece + 1:
                rec.pop("mturk")
            data[f"{piece}_{i}"] = rec
        files[piece] = str(root / f"{piece}.json")
        Path(files[piece]).write_text(json.dumps(data))
    return {"files": files, "image_root": str(root / "images"), "kept": 2 * per_piece}


def write_winoground(world, root, n=4):
    root = Path(root)
    lines = []
    for i in range(n):
        c0, c1 = f"wino {i} the cup on the box", f"wino {i} the box on the cup"
        _save(world.image([c0]), root / "images" / f"ex_{i}_img_0.png")
        _save(world.image([c1]), root / "images" / f"ex_{i}_img_1.png")
        lines.append(json.dumps({"id": i, "caption_0": c0, "caption_1": c1, "tag": "Object",
                                 "image_0": f"ex_{i}_img_0", "image_1": f"ex_{i}_img_1", "num_main_preds": 1,
                                 "secondary_tag": "", "collapsed_tag": "Object"}))
    (root / "examples.jsonl").write_text("\n".join(lines) + "\n")
    return {"jsonl": str(root / "examples.jsonl"), "image_root": str(root / "images")}


def write_zeroshot_folder(world, root, classes=("red_fox", "tabby cat", "kite"), per_class=2,
                          templates=("a photo of a {}.", "a {}.")):
    root = Path(root)
    for c in classes:
        name = c.replace("_", " ")
        for i in range(per_class):
            _save(world.image([t.format(name) for t in templates]), root / c / f"{i}.png")
    return {"root": str(root), "templates": list(templates)}


def _tar(path, members):
    with TarWriter(path) as w:
        for name, data in members:
            w.add(name, data)


def write_zeroshot_wds(world, root, classes=("dog", "cat", "kite"), per_class=2,
                       templates=("a photo of a {}.",)):
    """clip_benchmark's layout: KEY.png + KEY.cls in shards, classnames.txt beside them."""
    root = Path(root)
    members = []
    for c, name in enumerate(classes):
        for i in range(per_class):
            key = f"{c:03d}{i:04d}"
            members += [(f"{key}.png", png_bytes(world.image([t.format(name) for t in templates]))),
                        (f"{key}.cls", str(c).encode())]
    members.append(("broken0001.png", b"not an image"))  # a corrupt sample: skipped and counted
    _tar(root / "test" / "0.tar", members)
    (root / "classnames.txt").write_text("\n".join(classes) + "\n")
    return {"urls": str(root / "test" / "{0..0}.tar"), "classnames": str(root / "classnames.txt"),
            "templates": list(templates)}


def write_pairs(world, root, n=16, shards=2):
    """img2dataset layout: KEY.jpg + KEY.txt + KEY.json. Two images share one caption."""
    root = Path(root)
    per = n // shards
    for s in range(shards):
        members = []
        for i in range(per):
            idx = s * per + i
            cap = f"pair caption {min(idx, n - 2)}"  # the last two pairs share a caption
            buf = io.BytesIO()
            world.image([cap]).save(buf, format="JPEG", quality=95)
            key = f"{s:05d}{i:04d}"
            members += [(f"{key}.jpg", buf.getvalue()), (f"{key}.txt", cap.encode()),
                        (f"{key}.json",
                         json.dumps({"key": key, "caption": cap, "status": "success"}).encode())]
        _tar(root / f"{s:05d}.tar", members)
    return {"urls": str(root / f"{{00000..{shards - 1:05d}}}.tar")}


def write_karpathy(world, root, n_images=4, per_image=5, fmt="dataset", extra_splits=True):
    """The Karpathy split as released. fmt="dataset": dataset_coco.json ({"images": [{filepath,
    filename, split, sentences: [{raw, tokens, imgid, sentid}], imgid, sentids, cocoid}],
    "dataset": "coco"}) with val/train images that must be left out; fmt="list": the ALBEF/BLIP
    test file ([{"image": "val2014/...", "caption": [...]}]). Each image carries `per_image`
    captions, all of which describe it."""
    root = Path(root)
    images, out, sent = [], [], 0
    splits = ["test"] * n_images + (["val", "train"] if extra_splits and fmt == "dataset" else [])
    for i, split in enumerate(splits):
        caps = [f"karpathy image {i} caption {j}" for j in range(per_image)]
        name = f"COCO_val2014_{i:012d}.jpg"
        buf = io.BytesIO()
        world.image(caps).save(buf, format="JPEG", quality=95)
        (root / "val2014").mkdir(parents=True, exist_ok=True)
        (root / "val2014" / name).write_bytes(buf.getvalue())
        sents = [{"tokens": c.split(), "raw": c, "imgid": i, "sentid": sent + j} for j, c in enumerate(caps)]
        images.append({"filepath": "val2014", "sentids": [s["sentid"] for s in sents], "filename": name,
                       "imgid": i, "split": split, "sentences": sents, "cocoid": i})
        out.append({"image": f"val2014/{name}", "caption": caps})
        sent += per_image
    ann = root / ("dataset_coco.json" if fmt == "dataset" else "coco_karpathy_test.json")
    ann.write_text(json.dumps({"images": images, "dataset": "coco"} if fmt == "dataset" else out))
    return {"ann": str(ann), "image_root": str(root)}


def write_eqben(world, root, n=3):
    """EqBen's two released shapes: a list file (the subset, Kubric, SD: group = first folder)
    and the nested AG file ({video: {subject: [frame]}} with caption lists)."""
    root = Path(root)
    flat, nested = [], {}
    for i in range(n):
        for src in ("eqbensd", "eqbenkubric_cnt"):
            c0, c1 = f"{src} {i} two cubes left of a ball", f"{src} {i} a ball left of two cubes"
            rel = [f"{src}/{i:03d}_{k}.png" for k in (0, 1)]
            _save(world.image([c0]), root / "images" / rel[0])
            _save(world.image([c1]), root / "images" / rel[1])
            flat.append({"image0": rel[0], "caption0": c0, "image1": rel[1], "caption1": c1})
        c0, c1 = f"ag {i} a person holds a cup", f"ag {i} a person drinks from a cup"
        rel = [f"eqbenag/vid{i}/{k}.png" for k in (0, 1)]
        _save(world.image([c0]), root / "images" / rel[0])
        _save(world.image([c1]), root / "images" / rel[1])
        nested.setdefault(f"vid{i}", {}).setdefault("person", []).append(
            {"image0": rel[0], "caption0": [c0, "another phrasing"], "image1": rel[1], "caption1": [c1]})
    (root / "eqben_subset.json").write_text(json.dumps(flat))
    (root / "eqben_ag.json").write_text(json.dumps(nested))
    return {"ann": str(root / "eqben_subset.json"), "ann_ag": str(root / "eqben_ag.json"),
            "image_root": str(root / "images")}


def write_svo(world, root, per_type=3):
    """svo_probes.csv's columns; images named <image id>.png; one row has a missing image and
    one row two negative types (both skipped and counted)."""
    import csv
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows, iid = [], 1000
    for t in ("subj", "verb", "obj"):
        for i in range(per_type + 1):
            s = f"svo {t} {i} a girl rides a horse"
            pos, neg = iid, iid + 1
            iid += 2
            world.image([s]).save(root / "images" / f"{pos}.png")
            if i < per_type:  # the last row of each type lacks its negative image: a dead link
                world.image([f"svo other {t} {i}"]).save(root / "images" / f"{neg}.png")
            rows.append({"sentence": s, "pos_triplet": "girl,ride,horse", "neg_triplet": "boy,ride,horse",
                         "subj_neg": t == "subj", "verb_neg": t == "verb", "obj_neg": t == "obj",
                         "pos_url": f"http://example.invalid/{pos}.jpg",
                         "neg_url": f"http://example.invalid/{neg}.jpg",
                         "pos_image_id": pos, "neg_image_id": neg})
    rows.append({**rows[0], "verb_neg": True})  # two negative types: left out, as the notebook
    with open(root / "svo_probes.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return {"csv": str(root / "svo_probes.csv"), "image_root": str(root / "images")}


def write_vsr(world, root, n=3):
    """VSR's jsonl: each image with a true and a false caption; each true caption also judged
    false for the next image (so both i2t and t2i pairs exist)."""
    root = Path(root)
    trues = [f"vsr {i} the cat is left of the dog." for i in range(n)]
    lines = []
    for i in range(n):
        name = f"{i:012d}.png"
        _save(world.image([trues[i]]), root / "images" / name)
        lines.append({"image": name, "image_link": f"http://images.cocodataset.org/train2017/{name}",
                      "caption": trues[i], "label": 1, "relation": "left of", "subj": "cat", "obj": "dog"})
        lines.append({"image": name, "caption": f"vsr {i} the cat is under the dog.", "label": 0,
                      "relation": "under"})
        lines.append({"image": name, "caption": trues[(i + 1) % n], "label": 0, "relation": "left of"})
    (root / "test.jsonl").write_text("\n".join(json.dumps(rec) for rec in lines) + "\n")
    return {"jsonl": str(root / "test.jsonl"), "image_root": str(root / "images")}


def write_mmvp(world, root, types=("Orientation and Direction", "Color and Appearance"), pairs=2):
    """MMVP-VLM's layout: Questions.csv (id, type, statement) in consecutive pairs and
    MLLM_VLM_Images/<type>/<id>.jpg; each image carries its statement with the prefix."""
    import csv
    root = Path(root)
    rows, qid = [], 1
    for t in types:
        for p in range(pairs):
            for k in range(2):
                s = f"the {t.lower()} pair {p} statement {k}"
                img = world.image(["a photo of " + s])
                (root / "MLLM_VLM_Images" / t).mkdir(parents=True, exist_ok=True)
                img.save(root / "MLLM_VLM_Images" / t / f"{qid}.jpg", format="PNG")
                rows.append([qid, t, s])
                qid += 1
    with open(root / "Questions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Question ID", "Type", "Statement"])
        w.writerows(rows)
    return {"root": str(root)}


def write_cola(world, root, n=3):
    """COLA's multi-object file: [image URL, caption, image URL, caption] lists; the images saved
    under IMAGE_ROOT by their URL's file name."""
    root = Path(root)
    recs = []
    for i in range(n):
        c1 = f"cola {i} square white plate and round blue cup"
        c2 = f"cola {i} round white plate and square blue cup"
        names = [f"{2414600 + 2 * i}.jpg", f"{2414601 + 2 * i}.jpg"]
        _save(world.image([c1]), root / "images" / names[0])
        _save(world.image([c2]), root / "images" / names[1])
        recs.append([f"https://cs-people.bu.edu/array/data/vg_gqa_images/{names[0]}", c1,
                     f"https://cs-people.bu.edu/array/data/vg_gqa_images/{names[1]}", c2])
    (root / "COLA_multiobjects_matching_benchmark.json").write_text(json.dumps(recs))
    return {"ann": str(root / "COLA_multiobjects_matching_benchmark.json"),
            "image_root": str(root / "images")}


def write_crepe(world, root, per_file=3):
    """CREPE's productivity CSVs (image_id, x, y, width, height, caption, hard_negs as a list
    literal); Visual Genome ids split over two folders as VG_100K / VG_100K_2; the captioned
    content sits in the box, the rest of the image is another image's colour (so scoring the
    uncropped image breaks the oracle); one row's image is missing (skipped and counted)."""
    import csv
    root = Path(root)
    files, iid = {}, 100
    for kind in ("swap", "negate"):
        rows = []
        for i in range(per_file + 1):
            cap = f"crepe {kind} {i} a man on a horse in a field"
            negs = [f"crepe {kind} {i} negative {j}" for j in range(3)]
            if i < per_file:
                inner = world.image([cap])
                outer_id = len(world.image_tags)
                world.image([f"crepe background {kind} {i}"])
                canvas = Image.new("RGB", (40, 40), colour(outer_id))
                canvas.paste(inner.resize((16, 12)), (10, 20))
                _save(canvas, root / ("VG_100K" if i % 2 else "VG_100K_2") / f"{iid}.jpg")
            rows.append({"image_id": iid, "x": 10, "y": 20, "width": 16, "height": 12, "caption": cap,
                         "hard_negs": repr(negs)})
            iid += 1
        path = root / "prod_hard_negatives" / kind / f"prod_vg_hard_negs_{kind}_complexity_4.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        files[f"{kind}_4"] = str(path)
    return {"files": files, "image_root": [str(root / "VG_100K"), str(root / "VG_100K_2")]}
