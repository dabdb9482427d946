"""Image-text retrieval R@1/5/10 on a pair webdataset (img2dataset layout: KEY.jpg + KEY.txt).
Identical caption strings are one text candidate whose right images are all images carrying it
(as COCO's several captions per image). Ranks are strict: a wrong candidate scoring at least as
high as the best right one ranks above it."""
import torch

from .encode import encode_images, encode_texts
from .scoring import pct, strict_rank
from .shards import read_samples

KS = (1, 5, 10)


class RetrievalEvaluator:
    def __init__(self, urls, batch_size=128, limit=None):
        samples, self.skipped = read_samples(urls, ("image", "txt"))
        self.samples = samples[:limit]
        if not self.samples:
            raise ValueError(f"retrieval: no readable image+caption samples in {urls}")
        self.batch_size = batch_size

    @torch.no_grad()
    def run(self, model, tokenizer, preprocess, device="cpu"):
        was_training = model.training
        model.eval()
        caps = [s["txt"].decode("utf-8").strip() for s in self.samples]
        texts = list(dict.fromkeys(caps))
        tindex = {t: n for n, t in enumerate(texts)}
        img = encode_images(model, preprocess, list(range(len(self.samples))), self.batch_size, device,
                            load=lambda n: self.samples[n]["image"])
        txt = encode_texts(model, tokenizer, texts, self.batch_size, device)
        I = torch.stack([img[n] for n in range(len(self.samples))])
        T = torch.stack([txt[t] for t in texts])
        S = I @ T.T  # images x texts
        i2t = [strict_rank(S[n], [tindex[c]]) for n, c in enumerate(caps)]
        owners = {}
        for n, c in enumerate(caps):
            owners.setdefault(tindex[c], []).append(n)
        t2i = [strict_rank(S[:, j], owners[j]) for j in range(len(texts))]
        model.train(was_training)
        out = {}
        for k in KS:
            out[f"i2t/R@{k}"] = pct(r < k for r in i2t)
            out[f"t2i/R@{k}"] = pct(r < k for r in t2i)
        out["skipped"] = float(self.skipped)
        return out
