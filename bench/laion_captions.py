"""Pair shards whose captions have LAION's length distribution, for benchmarks whose claims
must hold on the data users train on.

LAION-400M/2B alt-texts (Schuhmann et al., "LAION-5B: An open large-scale dataset for training
next generation image-text models", 2022) have a median of about ten words and a long tail:
2-3 % run past fifty words, and those captions fill CLIP's 77-token context. A log-normal
word count with median 10 and sigma 0.82 has P(words > 50) = 2.5 %, so a batch of 64 holds
such a caption four times in five. Short ten-token captions flatter any trick that cuts the
text tower to the step's longest caption; these do not.

    python bench/laion_captions.py --src data/default --out data/default-laion

copies the pair shards of --src with every caption replaced (images byte for byte the same)
and links its candidate-set shards, so --out is a drop-in `data.root`."""
import argparse
import io
import json
import math
import sys
import tarfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEDIAN_WORDS = 10
SIGMA = 0.82          # ln(50 / 10) / 1.96: 2.5 % of captions over 50 words
MAX_WORDS = 250       # LAION keeps alt-texts up to a few hundred words

# alt-text vocabulary: product words, places, adjectives, stop words (one BPE token each) and,
# a quarter of the list, the sizes, codes, dates and hyphenated words alt-texts are full of
# (two to four tokens each): about 1.4 tokens a word, as in LAION's captions
HEAVY = ("12x18in 4x6 sku#4471 img_2034 dsc01987 t-shirt b&w 3/4 hand-painted eco-friendly "
         "long-sleeve high-resolution 2018-05-12 1920x1080 #1 w/ 100% 18k rose-gold 925-sterling "
         "off-white mid-century non-slip pre-owned xl/xxl 3-pack 50mm f/1.8 usb-c 16oz "
         "stainless-steel full-hd cross-body v-neck slim-fit hd-wallpaper "
         "new-york los-angeles ebay amazon etsy pinterest shutterstock 123rf dreamstime").split()
WORDS = HEAVY + ("a the of and in with for on to at by from new black white red blue green small large "
         "vintage modern wooden metal glass leather cotton women men kids girl boy dog cat house "
         "garden kitchen table chair lamp dress shirt shoes bag watch ring necklace car bike road "
         "city street beach mountain lake river forest sunset sky cloud flower tree tree-lined "
         "photo picture image stock illustration vector icon logo poster print canvas wall art "
         "design pattern background texture colour style size set pack gift box card wedding "
         "birthday christmas holiday summer winter spring autumn morning night light dark view "
         "close-up portrait landscape interior exterior home office hotel restaurant food cake "
         "coffee tea wine bottle cup plate bowl fresh organic handmade premium original classic "
         "best sale free shipping 2019 2020 2021 x 10 12 24 inch cm mm high quality hd 4k "
         "isolated on white transparent png jpg royalty-free editorial famous beautiful cute "
         "happy young old man woman family people group team business meeting laptop phone "
         "screen computer technology abstract geometric floral striped denim silk wool").split()


def word_counts(n: int, rng) -> np.ndarray:
    """n caption lengths in words: log-normal, median MEDIAN_WORDS, clipped to [1, MAX_WORDS]."""
    w = np.exp(rng.normal(math.log(MEDIAN_WORDS), SIGMA, n))
    return np.clip(np.rint(w), 1, MAX_WORDS).astype(int)


def caption(n_words: int, rng) -> str:
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), n_words))


def rewrite_shard(src: Path, dst: Path, rng) -> int:
    """Copy one img2dataset-layout shard, every KEY.txt (and the caption in KEY.json)
    replaced by a LAION-length caption. Returns the number of pairs. Written atomically."""
    tmp = dst.with_suffix(".tar.tmp")
    n = 0
    with tarfile.open(src) as tin, tarfile.open(tmp, "w") as tout:
        members = tin.getmembers()
        keys = sorted({m.name.rsplit(".", 1)[0] for m in members if m.name.endswith(".txt")})
        text = {k: caption(int(c), rng) for k, c in zip(keys, word_counts(len(keys), rng))}
        for m in members:
            data = tin.extractfile(m).read() if m.isfile() else None
            if data is None:
                continue
            key, ext = m.name.rsplit(".", 1)
            if ext == "txt" and key in text:
                data, n = text[key].encode(), n + 1
            elif ext == "json" and key in text:
                meta = json.loads(data)
                meta["caption"] = text[key]
                data = json.dumps(meta).encode()
            info = tarfile.TarInfo(m.name)
            info.size, info.mtime = len(data), 0
            tout.addfile(info, io.BytesIO(data))
    tmp.replace(dst)
    return n


def make(src_root, out_root, seed: int = 0) -> Path:
    """src_root/pairs/*.tar -> out_root/pairs/*.tar with LAION-length captions; out_root/sets
    links to src_root/sets. Shards already written are kept (the output is deterministic)."""
    src_root, out_root = Path(src_root), Path(out_root)
    shards = sorted((src_root / "pairs").glob("*.tar"))
    if not shards:
        raise FileNotFoundError(f"{src_root / 'pairs'}: no pair shards to copy (make them with "
                                f"`python -m hn_data.make_default --out {src_root}`)")
    (out_root / "pairs").mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(shards):
        dst = out_root / "pairs" / s.name
        if not dst.exists():
            rewrite_shard(s, dst, np.random.default_rng([seed, i]))
    sets = out_root / "sets"
    if (src_root / "sets").is_dir() and not sets.exists():
        sets.symlink_to((src_root / "sets").resolve(), target_is_directory=True)
    return out_root


def token_stats(root, tokenizer, context: int) -> dict:
    """What the benchmark's captions look like to the model: median tokens, share of captions
    filling the context, share of 64-caption steps that hold one."""
    lengths = []
    for s in sorted(Path(root, "pairs").glob("*.tar")):
        with tarfile.open(s) as t:
            caps = [t.extractfile(m).read().decode() for m in t.getmembers() if m.name.endswith(".txt")]
        lengths += [int(x) + 1 for x in tokenizer(caps).argmax(dim=-1)]
    lengths = np.array(lengths)
    full = lengths >= context
    steps = full[: len(full) // 64 * 64].reshape(-1, 64).any(axis=1) if len(full) >= 64 else full[:0]
    return {"captions": int(len(lengths)), "median_tokens": float(np.median(lengths)),
            "share_filling_context": float(full.mean()),
            "share_of_64_steps_with_one": float(steps.mean()) if len(steps) else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default="data/default")
    ap.add_argument("--out", default="data/default-laion")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stats", default=None, metavar="MODEL",
                    help="print token statistics for MODEL's tokenizer")
    a = ap.parse_args(argv)
    out = make(a.src, a.out, a.seed)
    print(f"LAION-length pair shards in {out}")
    if a.stats:
        import open_clip
        open_clip.add_model_config(ROOT / "train" / "model_configs")
        tok = open_clip.get_tokenizer(a.stats)
        print(json.dumps(token_stats(out, tok, tok.context_length), indent=1))


if __name__ == "__main__":
    main()
