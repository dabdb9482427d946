"""ARO's COCO-Order and Flickr30k-Order (Yuksekgonul et al., "When and Why Vision-Language
Models Behave like Bags-of-Words, and What to Do About It?", 2023), built from the Karpathy
test captions as ARO builds them: every caption of every test image is one item whose candidates
are the caption and four word-order perturbations of it,
  nouns_adj        the nouns shuffled among themselves, and the adjectives among themselves
  allbut_nouns_adj every word that is not a noun or adjective shuffled
  within_trigrams  the words shuffled inside each consecutive trigram
  trigrams         the trigrams shuffled
each then normalised as ARO's pre_caption does (lower case, . ! " ( ) * # : ; ~ removed, at
most 30 words). The figure is ARO's Precision@1: the original caption chosen among the five
(`acc`), plus the pairwise accuracy against each perturbation (`<perturbation>/acc`).

Files: the ALBEF/BLIP test files ARO downloads (coco_karpathy_test.json,
flickr30k_test.json: [{"image", "caption": [...]}]) or Karpathy's dataset_*.json (retrieval.py
reads both), images under IMAGE_ROOT. ARO draws its permutations unseeded; ours are seeded per
caption (`seed`), so a figure is reproducible but differs from ARO's by sampling noise. The
part-of-speech perturbations need a tagger: spaCy's en_core_web_sm, as ARO uses (`pip install
spacy` and its model); without one, list only the trigram perturbations in `perturbations`.
ARO's code takes argmax with the original listed first: tie_rule `first` is its rule."""
import re

import numpy as np
import torch

from .pairwise import Item, ItemEvaluator
from .retrieval import load_karpathy
from .scoring import pct, top1

PERTURBATIONS = ("nouns_adj", "allbut_nouns_adj", "within_trigrams", "trigrams")
NOUN_TAGS = {"NN", "NNS", "NNP", "NNPS"}
ADJ_TAGS = {"JJ", "JJR", "JJS"}
MAX_WORDS = 30


def normalise(caption, max_words=MAX_WORDS):
    """ARO's (BLIP's) pre_caption: lower case, a few punctuation marks to spaces, single spaces, 30 words."""
    text = re.sub(r'[.!"()*#:;~]', " ", caption.lower())
    words = re.sub(r"\s{2,}", " ", text).strip(" \n").split(" ")
    return " ".join(words[:max_words])


def word_tokens(caption):
    """Words and punctuation apart (what nltk.word_tokenize gives for plain captions)."""
    return re.findall(r"\w+(?:'\w+)?|[^\w\s]", caption)


def spacy_tagger():
    try:
        import spacy
        nlp = spacy.load("en_core_web_sm")
    except (ImportError, OSError) as e:
        raise ValueError("ARO order: the nouns_adj / allbut_nouns_adj perturbations need spaCy's "
                         f"en_core_web_sm tagger (as ARO uses) and it is not available ({e}); "
                         "install it, or set perturbations: [within_trigrams, trigrams]") from None
    return lambda text: [(t.text, t.tag_) for t in nlp(text)]


# name -> a function returning a tagger (text -> [(word, Penn tag)]); a suite picks one by name
TAGGERS = {"spacy": spacy_tagger}


def trigrams(tokens):
    return [tokens[i:i + 3] for i in range(0, len(tokens), 3)]


def perturb(caption, kind, rng, tagger=None):
    if kind in ("within_trigrams", "trigrams"):
        groups = trigrams(word_tokens(caption))
        if kind == "within_trigrams":
            groups = [list(rng.permutation(g)) for g in groups]
        else:
            groups = [groups[i] for i in rng.permutation(len(groups))]
        return " ".join(w for g in groups for w in g)
    tagged = tagger(caption)
    words = np.array([w for w, _ in tagged], dtype=object)
    if kind == "nouns_adj":
        for tags in (NOUN_TAGS, ADJ_TAGS):
            idx = [i for i, (_, t) in enumerate(tagged) if t in tags]
            words[idx] = words[rng.permutation(idx)] if idx else words[idx]
    elif kind == "allbut_nouns_adj":
        idx = [i for i, (_, t) in enumerate(tagged) if t not in NOUN_TAGS | ADJ_TAGS]
        words[idx] = words[rng.permutation(idx)] if idx else words[idx]
    else:
        raise ValueError(f"ARO order: unknown perturbation {kind!r}; known: {PERTURBATIONS}")
    return " ".join(words)


class AroOrderEvaluator(ItemEvaluator):
    """type aro_order: one suite per dataset (COCO-Order, Flickr30k-Order)."""
    type_name = "aro_order"

    def __init__(self, ann, image_root, split="test", perturbations=PERTURBATIONS, seed=0, tagger="spacy",
                 **common):
        super().__init__(**common)
        unknown = [p for p in perturbations if p not in PERTURBATIONS]
        if unknown or not perturbations:
            raise ValueError(f"ARO order: perturbations must be a non-empty subset of {PERTURBATIONS}, got "
                             f"{perturbations}")
        self.perturbations = list(perturbations)
        if tagger not in TAGGERS:
            raise ValueError(f"ARO order: unknown tagger {tagger!r}; known: {sorted(TAGGERS)}")
        needs_tags = any(p in ("nouns_adj", "allbut_nouns_adj") for p in perturbations)
        tagger = TAGGERS[tagger]() if needs_tags else None
        images = load_karpathy(ann, image_root, split, self.path)
        self.items = []
        for n, (path, caps) in enumerate(images):
            for j, cap in enumerate(caps):
                rng = np.random.default_rng([seed, n, j])  # one stream per caption: order-independent
                wrong = [normalise(perturb(cap, p, rng, tagger)) for p in self.perturbations]
                self.items.append(Item(path, normalise(cap), wrong, "order"))
                if self.limit and len(self.items) >= self.limit:
                    break
            if self.limit and len(self.items) >= self.limit:
                break

    def score(self, model, tokenizer, preprocess, device="cpu"):
        hits, scores, _ = self.scored(model, tokenizer, preprocess, device)
        metrics = {"acc": pct(hits)}
        for k, p in enumerate(self.perturbations):
            metrics[f"{p}/acc"] = pct(top1(torch.tensor([s[0], s[k + 1]]), 0, self.tie_rule) for s in scores)
        same = sum(it.right in it.wrong for it in self.items)  # a perturbation that changed nothing
        return self.result(metrics, {"items": len(hits), "unchanged_by_a_perturbation": same})

