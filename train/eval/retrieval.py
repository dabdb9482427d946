"""Image-text retrieval R@1/5/10, from either source:

  ann + image_root   the Karpathy split as released, in either of its two file formats:
                     dataset_coco.json / dataset_flickr30k.json ({"images": [{"filepath"?,
                     "filename", "split", "sentences": [{"raw", ...}]}]}, the `split` images kept,
                     default test) or the ALBEF/BLIP test file CLIP_benchmark and ARO read
                     (coco_karpathy_test.json, flickr30k_test_karpathy.json: [{"image",
                     "caption": [5 captions]}]);
  urls               a pair webdataset (img2dataset layout: KEY.jpg + KEY.txt), one caption a sample.

The standard protocol: every caption is a text->image query (its image must rank high);
image->text is a hit at k when ANY of the image's captions ranks in the top k. A caption string
that several images carry (COCO has a few) cannot tell them apart: each of those images counts
as right for it, in both directions. Ranks follow the tie rule (scoring.rank). `limit` keeps
the first N images with all their captions."""
import torch
from PIL import Image

from .base import Evaluator
from .encode import encode_images, encode_texts
from .pairwise import read_json
from .scoring import dual_only, pct, rank
from .shards import read_samples

KS = (1, 5, 10)


def load_karpathy(ann, image_root, split="test", path_of=None):
    """-> [(image path, [captions])] in file order."""
    data = read_json(ann, "retrieval (Karpathy split)")
    out = []
    if isinstance(data, dict) and "images" in data:
        for n, im in enumerate(data["images"]):
            where = f"{ann} images[{n}]"
            if not isinstance(im, dict) or "filename" not in im or "sentences" not in im:
                raise ValueError(f"{where}: expected {{filename, sentences, split}}")
            if split and im.get("split") != split:
                continue
            rel = f"{im['filepath']}/{im['filename']}" if im.get("filepath") else im["filename"]
            caps = [s["raw"].strip() if isinstance(s, dict) else str(s).strip() for s in im["sentences"]]
            out.append((path_of(image_root, rel, where), caps))
    elif isinstance(data, list):
        for n, rec in enumerate(data):
            where = f"{ann} item {n}"
            if not isinstance(rec, dict) or "image" not in rec or "caption" not in rec:
                raise ValueError(f"{where}: expected {{image, caption}}")
            caps = rec["caption"] if isinstance(rec["caption"], list) else [rec["caption"]]
            out.append((path_of(image_root, rec["image"], where), [c.strip() for c in caps]))
    else:
        raise ValueError(f"retrieval: {ann} is neither Karpathy's dataset_*.json ({{images: [...]}}) "
                         "nor the [{image, caption: [...]}] test file")
    if not out:
        raise ValueError(f"retrieval: {ann} has no images in split {split!r}")
    return out


def recall(S, captions_of, k_list=KS, rule="strict"):
    """S: images x texts (distinct strings); captions_of[n]: text indices of image n. -> metrics."""
    owners = {}
    for n, caps in enumerate(captions_of):
        for j in caps:
            owners.setdefault(j, set()).add(n)
    i2t = [rank(S[n], sorted(set(caps)), rule) for n, caps in enumerate(captions_of)]
    t2i = [rank(S[:, j], sorted(owners[j]), rule) for caps in captions_of for j in caps]
    out = {}
    for k in k_list:
        out[f"i2t/R@{k}"] = pct(r < k for r in i2t)
        out[f"t2i/R@{k}"] = pct(r < k for r in t2i)
    return out, len(t2i)


class RetrievalEvaluator(Evaluator):
    type_name = "retrieval"

    def __init__(self, urls=None, ann=None, image_root=None, split="test", **common):
        super().__init__(**common)
        if (urls is None) == (ann is None):
            raise ValueError("retrieval: give exactly one of urls (pair shards) or ann (+ image_root: "
                             "Karpathy split)")
        self.skipped = 0
        if ann is not None:
            if image_root is None:
                raise ValueError(f"retrieval: ann={ann} needs image_root (the folder its image paths start "
                                 "from)")
            self.images = load_karpathy(ann, image_root, split, self.path)[:self.limit]
        else:
            samples, self.skipped = read_samples(urls, ("image", "txt"))
            samples = samples[:self.limit]
            if not samples:
                raise ValueError(f"retrieval: no readable image+caption samples in {urls}")
            self.images = [(s["image"], [s["txt"].decode("utf-8").strip()]) for s in samples]

    def inputs(self):
        return [im for im, _ in self.images], [c for _, caps in self.images for c in caps]

    def score(self, model, tokenizer, preprocess, device="cpu"):
        dual_only(model, "retrieval")
        texts = list(dict.fromkeys(c for _, caps in self.images for c in caps))
        # images from shards are already decoded; from the Karpathy file they are paths
        load = lambda n: Image.open(self.images[n][0]).convert("RGB") if isinstance(self.images[n][0], str) \
            else self.images[n][0]
        img = encode_images(model, preprocess, list(range(len(self.images))), self.batch_size, device,
                            load=load)
        txt = encode_texts(model, tokenizer, texts, self.batch_size, device)
        # one column per distinct feature: strings with the same token ids are one candidate
        # (encode.py gives them one feature), so no matmul rounding can split their tie
        column, feats = {}, []
        for t in texts:
            key = txt[t].data_ptr()
            if key not in column:
                column[key] = len(feats)
                feats.append(txt[t])
        col = {t: column[txt[t].data_ptr()] for t in texts}
        S = torch.stack([img[n] for n in range(len(self.images))]) @ torch.stack(feats).T
        metrics, n_queries = recall(S, [[col[c] for c in caps] for _, caps in self.images],
                                    rule=self.tie_rule)
        return self.result(metrics,
                           {"images": len(self.images), "captions": n_queries, "skipped": self.skipped})
