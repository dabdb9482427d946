"""The newer evaluators (EqBen, SVO-Probes, VSR, ELEVATER-style zero-shot list) on fixtures in
each benchmark's released format: their skip counters and breakdowns, and agreement with an
independent computation (plain per-item loops) on a real tiny random open_clip model."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import eval_fixtures as fx
from eval_toy import ToyEncoder, World
from train.eval import build_one
from train.eval.contract import run_suite


@pytest.fixture(scope="module")
def tiny():
    from train import models
    torch.manual_seed(0)
    model, _, preprocess, tokenizer = models.create("hnclip-tiny")
    return model.eval(), preprocess, tokenizer


def embed_image(model, preprocess, path):
    with torch.no_grad():
        return model.encode_image(preprocess(Image.open(path).convert("RGB"))[None], normalize=True)[0]


def embed_text(model, tokenizer, text):
    with torch.no_grad():
        return model.encode_text(tokenizer([text]), normalize=True)[0]


def noisy_images(root):
    """Replace every toy image under root by random pixels: a random model then gives untied,
    varied scores."""
    rng = np.random.default_rng(0)
    for p in sorted(Path(root).rglob("*.png")):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(p)


def test_eqben_matches_the_benchmarks_winoground_formula(tmp_path, tiny):
    model, preprocess, tokenizer = tiny
    opts = fx.write_eqben(World(), tmp_path)
    noisy_images(opts["image_root"])
    ours = run_suite(build_one("eqben", {"ann": opts["ann"], "image_root": opts["image_root"]}, batch_size=3),
                     model, tokenizer, preprocess)
    # cal_wino_score of EqBen's own code, over plain per-pair similarities
    recs = json.load(open(opts["ann"]))
    s = {k: [] for k in ("c0i0", "c0i1", "c1i0", "c1i1")}
    for r in recs:
        i = [embed_image(model, preprocess, Path(opts["image_root"]) / r[f"image{k}"]) for k in (0, 1)]
        c = [embed_text(model, tokenizer, r[f"caption{k}"]) for k in (0, 1)]
        for a in (0, 1):
            for b in (0, 1):
                s[f"c{a}i{b}"].append(float(c[a] @ i[b]))
    s = {k: np.array(v) for k, v in s.items()}
    text = (s["c0i0"] > s["c1i0"]) & (s["c1i1"] > s["c0i1"])
    image = (s["c0i0"] > s["c0i1"]) & (s["c1i1"] > s["c1i0"])
    assert ours.metrics["text"] == pytest.approx(100 * text.mean())
    assert ours.metrics["image"] == pytest.approx(100 * image.mean())
    assert ours.metrics["group"] == pytest.approx(100 * (text & image).mean())
    assert {"eqbensd/group", "eqbenkubric_cnt/group"} <= set(ours.metrics)
    ag = build_one("eqben", {"ann": opts["ann_ag"], "image_root": opts["image_root"]})
    assert [p.group for p in ag.items] == ["eqbenag"] * 3 and "another phrasing" not in ag.items[0].captions


def test_svo_probes_skips_dead_links_and_matches_pairwise_loops(tmp_path, tiny):
    model, preprocess, tokenizer = tiny
    opts = fx.write_svo(World(), tmp_path)
    assert len(build_one("svo_probes", opts).rows) == 9
    noisy_images(opts["image_root"])
    ours = run_suite(build_one("svo_probes", opts, batch_size=4), model, tokenizer, preprocess)
    assert ours.counts["skipped_missing_image"] == 3 and ours.counts["skipped_not_one_type"] == 1
    hits = {"subj": [], "verb": [], "obj": []}
    for r in csv.DictReader(open(opts["csv"])):
        types = [t for t in hits if r[f"{t}_neg"] == "True"]
        pos, neg = (Path(opts["image_root"]) / f"{r[k]}.png" for k in ("pos_image_id", "neg_image_id"))
        if len(types) != 1 or not neg.is_file():
            continue
        q = embed_text(model, tokenizer, r["sentence"])
        pos_s, neg_s = (float(embed_image(model, preprocess, p) @ q) for p in (pos, neg))
        hits[types[0]].append(pos_s > neg_s)
    for t, h in hits.items():
        assert ours.metrics[f"{t}/acc"] == pytest.approx(100 * np.mean(h))
    assert ours.metrics["avg/acc"] == pytest.approx(100 * np.mean(sum(hits.values(), [])))


def test_vsr_pairs_and_their_accuracy_match_plain_loops(tmp_path, tiny):
    model, preprocess, tokenizer = tiny
    opts = fx.write_vsr(World(), tmp_path)
    noisy_images(opts["image_root"])
    ours = run_suite(build_one("vsr", opts, batch_size=2), model, tokenizer, preprocess)
    recs = [json.loads(line) for line in open(opts["jsonl"])]
    # every image has 1 true and 2 false captions -> 2 i2t pairs; every true caption is false of
    # one other image
    assert ours.counts["i2t_pairs"] == 6 and ours.counts["t2i_pairs"] == 3
    i2t, t2i = [], []
    for r in recs:
        if r["label"] == 1:
            img = embed_image(model, preprocess, Path(opts["image_root"]) / r["image"])
            for f in recs:
                if f["image"] == r["image"] and f["label"] == 0:
                    i2t.append(float(embed_text(model, tokenizer, r["caption"]) @ img) >
                               float(embed_text(model, tokenizer, f["caption"]) @ img))
                if f["caption"] == r["caption"] and f["label"] == 0:
                    q = embed_text(model, tokenizer, r["caption"])
                    other = embed_image(model, preprocess, Path(opts["image_root"]) / f["image"])
                    t2i.append(float(img @ q) > float(other @ q))
    assert ours.metrics["i2t/acc"] == pytest.approx(100 * np.mean(i2t))
    assert ours.metrics["t2i/acc"] == pytest.approx(100 * np.mean(t2i))
    assert ours.metrics["avg/acc"] == pytest.approx(100 * np.mean(i2t + t2i))


def test_zeroshot_suite_averages_its_datasets(tmp_path):
    world = World()
    zf = fx.write_zeroshot_folder(world, tmp_path / "a")
    zw = fx.write_zeroshot_wds(world, tmp_path / "b")
    # a third dataset the toy model gets wrong: folder names that are not the prompts' classes
    wrong = fx.write_zeroshot_folder(world, tmp_path / "c", classes=("x", "y"), templates=("nothing {}",))
    ev = build_one("zeroshot_suite", {"datasets": {"a": zf, "b": zw,
                                                   "c": {"root": wrong["root"], "templates": ["a {}."]}}})
    res = run_suite(ev, ToyEncoder(world), ToyEncoder(world).tokenizer, ToyEncoder(world).preprocess)
    assert res.metrics["a/top1"] == 100.0 and res.metrics["b/top1"] == 100.0 and res.metrics["c/top1"] == 0.0
    assert res.metrics["avg/top1"] == pytest.approx(200 / 3)
    assert res.counts["b/skipped"] == 1
    with pytest.raises(ValueError, match="unknown key"):
        build_one("zeroshot_suite", {"datasets": {"a": {**zf, "rooot": 1}}})


SCPP = Path(__file__).parent / "fixtures" / "sugarcrepe_pp"


def test_sugarcrepe_pp_on_the_released_excerpt(tmp_path, tiny):
    recs = json.load(open(SCPP / "replace_rel.json"))
    world = World()
    for r in recs:  # each image carries both positives, never the negative
        world.image([r["caption"], r["caption2"]]).save(tmp_path / r["filename"], format="PNG")
    ev = build_one("sugarcrepe_pp", {"root": str(SCPP), "image_root": str(tmp_path)})
    for mode, expected in (("oracle", 100.0), ("reversed", 0.0)):
        enc = ToyEncoder(world, mode)
        res = run_suite(ev, enc, enc.tokenizer, enc.preprocess)
        assert res.metrics["replace_rel/itt"] == expected and res.metrics["avg/itt"] == expected
    # text-only and image-text figures equal plain loops on a tiny open_clip model
    model, preprocess, tokenizer = tiny
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    rng = np.random.default_rng(0)
    for r in recs:
        Image.fromarray(rng.integers(0, 255,
                                     (48, 48, 3), dtype=np.uint8)).save(noisy / r["filename"], format="PNG")
    ours = run_suite(build_one("sugarcrepe_pp", {"root": str(SCPP), "image_root": str(noisy)}, batch_size=2),
                     model, tokenizer, preprocess)
    itt, tot = [], []
    for r in recs:
        i = embed_image(model, preprocess, noisy / r["filename"])
        p1, p2, n = (embed_text(model, tokenizer, r[k]) for k in ("caption", "caption2", "negative_caption"))
        itt.append(float(i @ p1) > float(i @ n) and float(i @ p2) > float(i @ n))
        tot.append(float(p1 @ p2) > float(p1 @ n) and float(p1 @ p2) > float(p2 @ n))
    assert ours.metrics["replace_rel/itt"] == pytest.approx(100 * np.mean(itt))
    assert ours.metrics["replace_rel/tot"] == pytest.approx(100 * np.mean(tot))


def test_mmvp_vlm_matches_the_official_pair_rule(tmp_path, tiny):
    model, preprocess, tokenizer = tiny
    opts = fx.write_mmvp(World(), tmp_path)
    rng = np.random.default_rng(0)
    for p in sorted(Path(opts["root"]).rglob("*.jpg")):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(p, format="PNG")
    ours = run_suite(build_one("mmvp_vlm", opts, batch_size=3), model, tokenizer, preprocess)
    rows = list(csv.reader(open(Path(opts["root"]) / "Questions.csv")))[1:]
    per = {}
    for (q1, t, s1), (q2, _, s2) in zip(rows[::2], rows[1::2]):
        imgs = [embed_image(model, preprocess,
                            Path(opts["root"]) / "MLLM_VLM_Images" / t / f"{q}.jpg") for q in (q1, q2)]
        texts = [embed_text(model, tokenizer, "a photo of " + s) for s in (s1, s2)]
        # the official script: statement k picks image 1 when softmax over the two images > 0.5
        pick = [0 if float(txt @ imgs[0]) > float(txt @ imgs[1]) else 1 for txt in texts]
        per.setdefault(t, []).append(pick == [0, 1])
    for t, hits in per.items():
        assert ours.metrics[f"{t}/acc"] == pytest.approx(100 * np.mean(hits))
    assert ours.metrics["avg/acc"] == pytest.approx(np.mean([100 * np.mean(h) for h in per.values()]))


def test_cola_matches_its_multi_object_accuracy(tmp_path, tiny):
    model, preprocess, tokenizer = tiny
    opts = fx.write_cola(World(), tmp_path)
    rng = np.random.default_rng(0)
    for p in sorted(Path(opts["image_root"]).glob("*.jpg")):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(p, format="PNG")
    ours = run_suite(build_one("cola", opts, batch_size=2), model, tokenizer, preprocess)
    hits = []
    for u1, c1, u2, c2 in json.load(open(opts["ann"])):
        i1, i2 = (embed_image(model, preprocess,
                              Path(opts["image_root"]) / u.split("/")[-1]) for u in (u1, u2))
        t1, t2 = embed_text(model, tokenizer, c1), embed_text(model, tokenizer, c2)
        p = [[float(i1 @ t1), float(i1 @ t2)], [float(i2 @ t1), float(i2 @ t2)]]
        hits.append(p[0][0] > p[1][0] and p[1][1] > p[0][1])   # COLA's ColaMultiObjAcc
    assert ours.metrics["acc"] == pytest.approx(100 * np.mean(hits))


def test_crepe_recall_at_1_on_the_box_crop_matches_plain_loops(tmp_path, tiny):
    import ast
    model, preprocess, tokenizer = tiny
    opts = fx.write_crepe(World(), tmp_path)
    rng = np.random.default_rng(0)
    for p in sorted(tmp_path.rglob("*.jpg")):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(p, format="PNG")
    ours = run_suite(build_one("crepe", opts, batch_size=4), model, tokenizer, preprocess)
    for name, path in opts["files"].items():
        hits = []
        for r in csv.DictReader(open(path)):
            img = next((Path(d) / f"{r['image_id']}.jpg" for d in opts["image_root"]
                        if (Path(d) / f"{r['image_id']}.jpg").is_file()), None)
            if img is None:
                continue
            x, y, w, h = (float(r[k]) for k in ("x", "y", "width", "height"))
            crop = Image.open(img).convert("RGB").crop((x, y, x + w, y + h))
            with torch.no_grad():
                e = model.encode_image(preprocess(crop)[None], normalize=True)[0]
            s = [float(embed_text(model, tokenizer, c) @ e)
                 for c in [r["caption"], *ast.literal_eval(r["hard_negs"])]]
            hits.append(all(s[0] > v for v in s[1:]))
        assert ours.metrics[f"{name}/acc"] == pytest.approx(100 * np.mean(hits))
