"""`--model hf:<dir>`: transformers CLIP, SigLIP, BLIP (ITC) and FLAVA behind the evaluator contract,
on tiny random-weight models built from transformers' config classes and saved to a local
directory (no network). A random model has no right answers of its own, so the oracle is
built from it: a SPEC-format benchmark whose labels are the candidates the model itself ranks
first (computed straight with transformers, not through the adapter) must score 100 through
`python -m train.evaluate`, and the one labelled with the candidates it ranks last must score 0."""
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

pytest.importorskip("transformers")
import transformers as tf  # noqa: E402

from train.eval import evaluate as cmd  # noqa: E402
from train.eval.adapters.hf import load_hf  # noqa: E402

SIZE = 32
TEXT = dict(vocab_size=700, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            max_position_embeddings=24)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
              image_size=SIZE,
              patch_size=8)


def clip_tokenizer(path):
    """A byte-level BPE tokenizer with no merges: every character its own token (CLIP's format)."""
    from open_clip.tokenizer import bytes_to_unicode
    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    return tf.CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt")), len(vocab)


def bert_tokenizer(path):
    path.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz0123456789")
    (path / "vocab.txt").write_text("\n".join(words) + "\n")
    return tf.BertTokenizer(str(path / "vocab.txt")), len(words)


def build(family, root):
    torch.manual_seed(0)
    d = root / family
    if family == "flava":
        tok, n = bert_tokenizer(root / "tok_flava")
        small = {k: TEXT[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                      "num_attention_heads")}
        cfg = tf.FlavaConfig(image_config={**small, "image_size": SIZE, "patch_size": 8},
                             text_config={**small, "vocab_size": n,
                                          "max_position_embeddings": TEXT["max_position_embeddings"],
                                          "pad_token_id": 0},
                             multimodal_config=small, projection_dim=16, hidden_size=32,
                             image_codebook_config={"hidden_size": 16, "num_groups": 1,
                                                    "num_blocks_per_group": 1,
                                                    "vocab_size": 32})
        model = tf.FlavaModel(cfg)
        proc = tf.FlavaImageProcessor(size={"height": SIZE, "width": SIZE},
                                      crop_size={"height": SIZE, "width": SIZE})
    elif family == "blip":
        tok, n = bert_tokenizer(root / "tok_blip")
        cfg = tf.BlipConfig(text_config={**TEXT, "vocab_size": n, "encoder_hidden_size": 32,
                                         "pad_token_id": 0},
                            vision_config=VISION, image_text_hidden_size=16)
        model = tf.BlipForImageTextRetrieval(cfg)
        proc = tf.BlipImageProcessor(size={"height": SIZE, "width": SIZE})
    else:
        tok, n = clip_tokenizer(root / f"tok_{family}")
        ids = {"vocab_size": n, "bos_token_id": n - 2, "eos_token_id": n - 1, "pad_token_id": n - 1}
        if family == "clip":
            model = tf.CLIPModel(tf.CLIPConfig(text_config={**TEXT, **ids}, vision_config=VISION,
                                               projection_dim=16))
            proc = tf.CLIPImageProcessor(size={"shortest_edge": SIZE},
                                         crop_size={"height": SIZE, "width": SIZE})
        else:
            model = tf.SiglipModel(tf.SiglipConfig(text_config={**TEXT, **ids}, vision_config=VISION))
            proc = tf.SiglipImageProcessor(size={"height": SIZE, "width": SIZE})
    model.save_pretrained(d)
    tok.save_pretrained(d)
    proc.save_pretrained(d)
    return d, model.eval(), tok, proc


def direct_scores(family, model, tok, proc, image, captions):
    """Scores straight from transformers, one caption at a time (no adapter code)."""
    n = model.config.text_config.max_position_embeddings
    with torch.no_grad():
        px = proc(images=image, return_tensors="pt")["pixel_values"]
        enc = [tok([c], padding="max_length", truncation=True,
                   max_length=n, return_tensors="pt") for c in captions]
        if family == "blip":
            img = model.vision_proj(model.vision_model(pixel_values=px)[0][:, 0])
            txt = torch.cat([model.text_proj(model.text_encoder(input_ids=e["input_ids"],
                                                                attention_mask=e["attention_mask"])[0][:, 0])
                             for e in enc])
        elif family == "flava":
            img = model.image_projection(model.image_model(pixel_values=px)[0][:, 0])
            hidden = [model.text_model(input_ids=e["input_ids"], attention_mask=e["attention_mask"])[0]
                      for e in enc]
            txt = torch.cat([model.text_projection(h[:, 0]) for h in hidden])
        else:
            feat = lambda o: o if isinstance(o, torch.Tensor) else o.pooler_output
            img = feat(model.get_image_features(pixel_values=px))
            txt = torch.cat([feat(model.get_text_features(input_ids=e["input_ids"])) for e in enc])
    img, txt = (torch.nn.functional.normalize(x, dim=-1) for x in (img, txt))
    return (txt @ img[0]).tolist()


def spec_from_model(root, family, model, tok, proc, pick):
    """One SPEC subset (i2t only matters here) whose labels the model itself decides."""
    rng = np.random.default_rng(1)
    sub = root / "spec" / "count"
    (sub / "images").mkdir(parents=True, exist_ok=True)
    i2t = []
    for q in range(6):
        caps = [f"set {q} option {j} has {j + 1} cups" for j in range(4)]
        rel = f"images/{q}.png"
        img = Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
        img.save(sub / rel)
        s = direct_scores(family, model, tok, proc, Image.open(sub / rel).convert("RGB"), caps)
        assert len(set(s)) == 4  # a random model still separates the candidates
        i2t.append({"query": rel, "keys": caps, "label": int(pick(s))})
    (sub / "image2text.json").write_text(json.dumps(i2t))
    (sub / "text2image.json").write_text(json.dumps([{"query": i2t[0]["keys"][0], "keys": [i2t[0]["query"]],
                                                      "label": 0}]))
    return str(root / "spec")


@pytest.mark.parametrize("family", ["clip", "siglip", "blip", "flava"])
def test_hf_adapter_scores_the_models_own_answers(tmp_path, family):
    d, model, tok, proc = build(family, tmp_path)
    adapter, preprocess, tokenizer, desc = load_hf(str(d))
    assert family in desc and not adapter.training
    for pick, expected in ((np.argmax, 100.0), (np.argmin, 0.0)):
        root = spec_from_model(tmp_path / pick.__name__, family, model, tok, proc, pick)
        conf = tmp_path / f"{pick.__name__}.yaml"
        conf.write_text(yaml.safe_dump({"benchmarks": ["spec"], "suites": {"spec": {"root": root}},
                                        "batch_size": 4}))
        res = cmd.main([f"model=hf:{d}", f"eval={conf}", f"out={tmp_path / f'out_{pick.__name__}'}"])
        assert res["spec/count/i2t"] == expected, (family, pick.__name__)
    # identical token ids -> identical features, whatever the batch (the tie rules depend on it)
    a = "a cup " * 40
    t = tokenizer([a + "left", a + "right", "short"])
    assert torch.equal(t[0], t[1]) and t.shape[1] == model.config.text_config.max_position_embeddings


def test_unsupported_family_is_named(tmp_path):
    cfg = tf.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32)
    tf.BertModel(cfg).save_pretrained(tmp_path / "bert")
    with pytest.raises(ValueError, match="model_type 'bert'"):
        load_hf(str(tmp_path / "bert"))


def test_blip_itm_head_scores_pairs_as_transformers_does(tmp_path):
    """hf-itm: the cross-encoder through the evaluators: its pair scores equal BLIP's own forward
    (use_itm_head=True), a benchmark labelled with its own first choices scores 100, reversed 0,
    and gallery benchmarks (retrieval) refuse it with a clear message."""
    import eval_fixtures as fx
    from eval_toy import World
    from train.eval import build_one
    from train.eval.contract import run_suite
    d, model, tok, proc = build("blip", tmp_path)
    itm, preprocess, tokenizer, desc = load_hf(str(d), "itm")
    assert "ITM" in desc
    n = model.config.text_config.max_position_embeddings

    def own(image, captions):
        px = proc(images=image, return_tensors="pt")["pixel_values"]
        out = []
        with torch.no_grad():
            for c in captions:
                e = tok([c], padding="max_length", truncation=True, max_length=n, return_tensors="pt")
                logits = model(input_ids=e["input_ids"], attention_mask=e["attention_mask"], pixel_values=px,
                               use_itm_head=True).itm_score
                out.append(float(logits.softmax(-1)[0, 1]))
        return out

    img = Image.fromarray(np.random.default_rng(2).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    caps = ["two cups on a table", "a cup under a table", "three dogs"]
    with torch.no_grad():
        ours = itm.match(itm.encode_image(preprocess(img)[None]).expand(3, -1, -1),
                         itm.encode_text(tokenizer(caps)))
    assert ours.tolist() == pytest.approx(own(img, caps), abs=1e-6)
    for pick, expected in ((np.argmax, 100.0), (np.argmin, 0.0)):
        root = tmp_path / f"spec_{pick.__name__}" / "count"
        (root / "images").mkdir(parents=True)
        rng = np.random.default_rng(3)
        i2t = []
        for q in range(4):
            keys = [f"set {q} has {j} cups" for j in range(3)]
            Image.fromarray(rng.integers(0, 255,
                                         (40, 40, 3), dtype=np.uint8)).save(root / "images" / f"{q}.png")
            i2t.append({"query": f"images/{q}.png", "keys": keys,
                        "label": int(pick(own(Image.open(root / "images" / f"{q}.png").convert("RGB"),
                                              keys)))})
        (root / "image2text.json").write_text(json.dumps(i2t))
        (root / "text2image.json").write_text(json.dumps([]))
        res = run_suite(build_one("spec", {"root": str(root.parent)}, batch_size=2), itm, tokenizer,
                        preprocess)
        assert res.metrics["count/i2t"] == expected
    with pytest.raises(ValueError, match="cross-encoder"):
        run_suite(build_one("retrieval", fx.write_karpathy(World(), tmp_path / "k", n_images=2)), itm,
                  tokenizer,
                  preprocess)
