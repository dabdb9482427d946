"""Text hard negatives for ordinary captions (NegCLIP-style rule-based perturbations), and a
command that turns a pair stream into text-only candidate sets.

Kinds (each returns None when the caption offers nothing to perturb; a result is never equal to
the original, compared case- and space-insensitively):
  number          one number word -> another ("two dogs" -> "five dogs"), plural fixed up
  spatial         a spatial word -> its opposite (left/right, above/below, top/bottom, on/under ...)
  size            a size word -> its opposite (small/large, bigger/smaller, tall/short ...)
  relation        a relation phrase -> a different one (riding -> holding, on -> next to ...)
  swap_attribute  two attribute words trade places ("a red car and a blue bike" -> blue car, red bike)
  swap_object     two object nouns trade places ("a dog on a sofa" -> "a sofa on a dog")
  negation        add or remove a negation ("there is a dog" -> "there is no dog")
  shuffle         word-order shuffle (same bag of words, different order)

    python -m hn_data.text_negatives pairs='data/default/pairs/pairs-{000000..000007}.tar' \
        out=data/default/text_sets negatives=3
writes one set per pair: the pair's image, its caption (image_caption = [0]) and up to N
perturbed captions as text-only hard negatives; meta.negative_kinds tags each one."""
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cli import ConfigError, command, setting
from .run_summary import write_summary
from .tar_io import local_samples

NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
SPATIAL = {"left": "right", "right": "left", "above": "below", "below": "above", "top": "bottom",
           "bottom": "top", "on": "under", "under": "on", "over": "under", "inside": "outside",
           "outside": "inside", "behind": "in front of", "in front of": "behind", "front": "back",
           "back": "front", "up": "down", "down": "up"}
SIZE = {"small": "large", "large": "small", "big": "small", "little": "big", "tiny": "huge",
        "huge": "tiny", "bigger": "smaller", "smaller": "bigger", "larger": "smaller", "tall": "short",
        "short": "tall", "long": "short", "medium": "large", "thin": "thick", "thick": "thin"}
RELATIONS = ["riding", "holding", "on", "next to", "behind", "under", "in", "carrying", "eating",
             "wearing", "near", "above", "watching", "sitting on", "standing on"]
ATTRIBUTES = {"red", "green", "blue", "yellow", "purple", "orange", "pink", "black", "white", "brown",
              "grey", "gray", "small", "large", "big", "little", "tall", "short", "old", "young", "wooden",
              "metal", "plastic", "glass", "striped", "dark", "bright", "empty", "full", "open", "closed",
              "wet", "dry", "hot", "cold", "new", "round", "square"}
DETERMINERS = {"a", "an", "the", "two", "three", "four", "five", "six", "seven", "eight", "nine",
               "some", "many", "one", "his", "her", "their", "its", "this", "that"}
META_NOUNS = {"photo", "picture", "image", "view", "close", "closeup", "shot", "front", "side", "top",
              "left", "right", "middle", "center", "bottom", "back", "corner"}
KINDS = ["number", "spatial", "size", "relation", "swap_attribute", "swap_object", "negation", "shuffle"]


def _norm(s):
    return " ".join(s.lower().split())


def _words(s):
    return s.split()


def _replace_phrase(caption, table, rng):
    """Replace one phrase found in `table` (a dict phrase -> replacement, or a list of
    alternatives) at a word boundary; longer phrases win over their parts."""
    low = caption.lower()
    keys = sorted(table, key=len, reverse=True)
    found = []
    for k in keys:
        for m in re.finditer(r"\b" + re.escape(k) + r"\b", low):
            if not any(m.start() < e and s < m.end() for s, e, _ in found):
                found.append((m.start(), m.end(), k))
    if not found:
        return None
    s, e, k = found[int(rng.integers(len(found)))]
    if isinstance(table, dict):
        new = table[k]
    else:
        alts = [r for r in table if r != k]
        new = alts[int(rng.integers(len(alts)))]
    return caption[:s] + new + caption[e:]


def number(caption, rng):
    w = _words(caption)
    idx = [i for i, t in enumerate(w) if t.lower() in NUMBERS[:9] or (t.isdigit() and 1 <= int(t) <= 9)]
    if not idx:
        return None
    i = idx[int(rng.integers(len(idx)))]
    old = NUMBERS.index(w[i].lower()) + 1 if not w[i].isdigit() else int(w[i])
    new = int(rng.choice([n for n in range(1, 10) if n != old]))
    w[i] = str(new) if w[i].isdigit() else NUMBERS[new - 1]
    if i + 1 < len(w):   # keep the noun's number agreeing (good enough for English plurals)
        noun = w[i + 1]
        if new == 1 and old > 1 and noun.endswith("s") and len(noun) > 3:
            es = noun.endswith("es") and noun[:-2].endswith(("x", "ch", "sh", "o"))
            w[i + 1] = noun[:-2] if es else noun[:-1]
        elif new > 1 and old == 1 and not noun.endswith("s"):
            w[i + 1] = noun + ("es" if noun.endswith(("x", "ch", "sh", "o")) else "s")
    return " ".join(w)


def spatial(caption, rng):
    return _replace_phrase(caption, SPATIAL, rng)


def size(caption, rng):
    return _replace_phrase(caption, SIZE, rng)


def relation(caption, rng):
    return _replace_phrase(caption, RELATIONS, rng)


def swap_attribute(caption, rng):
    w = _words(caption)
    return _swap_two(w, [i for i, t in enumerate(w) if t.lower().strip(",.") in ATTRIBUTES], rng)


def _swap_two(w, idx, rng):
    """Swap two of the words at positions idx that differ; None if no such pair."""
    pairs = [(i, j) for a, i in enumerate(idx) for j in idx[a + 1:] if w[i].lower() != w[j].lower()]
    if not pairs:
        return None
    i, j = pairs[int(rng.integers(len(pairs)))]
    w[i], w[j] = w[j], w[i]
    return " ".join(w)


def _nouns(w):
    """Heads of determiner phrases: the first word after a determiner that is not an attribute."""
    out = []
    for i, t in enumerate(w[:-1]):
        if t.lower() in DETERMINERS:
            j = i + 1
            while j < len(w) - 1 and w[j].lower() in ATTRIBUTES:
                j += 1
            head = w[j].lower().strip(",.")
            if head not in META_NOUNS and head not in DETERMINERS and head.isalpha():
                out.append(j)
    return out


def swap_object(caption, rng):
    w = _words(caption)
    return _swap_two(w, _nouns(w), rng)


NEGATIONS = [(r"\bthere is no\b", "there is a"), (r"\bthere are no\b", "there are some"),
             (r"\bis not\b", "is"), (r"\bare not\b", "are"), (r"\bwithout\b", "with"),
             (r"\bthere is (a|an|one)\b", "there is no"), (r"\bthere are\b", "there are no"),
             (r"\bis\b", "is not"), (r"\bare\b", "are not"), (r"\bwith\b", "without"),
             (r"\bof (a|an|one)\b", "without a")]


def negation(caption, rng):
    """Flip the first pattern that applies (removing a negation is tried before adding one)."""
    for pat, rep in NEGATIONS:
        if re.search(pat, caption, flags=re.I):
            return re.sub(pat, rep, caption, count=1, flags=re.I)
    return None


def shuffle(caption, rng):
    w = _words(caption)
    if len({t.lower() for t in w}) < 2:
        return None
    for _ in range(10):
        perm = [w[i] for i in rng.permutation(len(w))]
        if _norm(" ".join(perm)) != _norm(caption):
            return " ".join(perm)
    return None


PERTURB = {"number": number, "spatial": spatial, "size": size, "relation": relation,
           "swap_attribute": swap_attribute, "swap_object": swap_object, "negation": negation,
           "shuffle": shuffle}


def perturb(caption: str, rng: np.random.Generator, kinds=KINDS):
    """[(kind, negative)] for every kind that applies, each distinct from the caption and from
    the others."""
    out, seen = [], {_norm(caption)}
    for kind in kinds:
        neg = PERTURB[kind](caption, rng)
        if neg is not None and _norm(neg) not in seen:
            seen.add(_norm(neg))
            out.append((kind, neg))
    return out


def negatives_for(caption, rng, n):
    """Up to n negatives, semantic kinds first: a shuffle is the weakest negative, used last."""
    cands = perturb(caption, rng)
    sem = [c for c in cands if c[0] != "shuffle"]
    order = [sem[i] for i in rng.permutation(len(sem))] + [c for c in cands if c[0] == "shuffle"]
    return order[:n]


def _read_pairs(tar_path, on_damage=None):
    """(key, jpg bytes, caption) of one img2dataset shard; members missing either are skipped,
    and so is a damaged member (reported through on_damage)."""
    groups = {}
    for key, sample in local_samples(tar_path, on_damage):
        groups.setdefault(key, {}).update({e: d for e, d in sample.items() if e in ("jpg", "txt")})
    for key in sorted(groups):
        g = groups[key]
        if "jpg" in g and "txt" in g:
            yield key, g["jpg"], g["txt"].decode("utf-8", "replace").strip()


@dataclass
class TextNegativesCommand:
    pairs: str = setting(help="brace-expandable list of img2dataset shards")
    out: str = setting(help="output folder for sets-NNNNNN.tar (the run directory)")
    negatives: int = setting(3, "text-only negatives per set")
    seed: int = setting(0)


def check(args: TextNegativesCommand):
    if args.negatives < 1:
        raise ConfigError(f"invalid value negatives={args.negatives}: must be >= 1")


def text_sets(args: TextNegativesCommand) -> dict:
    from .set_format import TarWriter, validate_record
    from .tar_io import expand
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stats = {"sets": 0, "skipped_no_negative": 0, "damaged_members": 0, "kinds": {k: 0 for k in KINDS}}

    def damaged():  # real crawls have damaged members: skip and count them
        stats["damaged_members"] += 1
    for s, path in enumerate(expand(args.pairs)):
        w = TarWriter(out / f"sets-{s:06d}.tar")
        for key, jpg, cap in _read_pairs(path, damaged):
            rng = np.random.default_rng(np.random.SeedSequence([args.seed, s,
                                                                int.from_bytes(key.encode()[-8:], "little")]))
            negs = negatives_for(cap, rng, args.negatives)
            if not negs:
                stats["skipped_no_negative"] += 1
                continue
            rec = {"subset": "text_negatives", "captions": [cap] + [t for _, t in negs], "image_caption": [0],
                   "objects": [], "meta": {"negative_kinds": [k for k, _ in negs], "source": f"{path}:{key}"}}
            validate_record(rec, 1, f"{path}:{key}")
            w.add(f"{key}.json", json.dumps(rec).encode())
            w.add(f"{key}.0.jpg", jpg)
            stats["sets"] += 1
            for k, _ in negs:
                stats["kinds"][k] += 1
        w.close()
    return write_summary(out, stats)


main = command(TextNegativesCommand, text_sets, prog="hnclip-text-negatives", doc=__doc__, run_dir="${out}",
               check=check)


if __name__ == "__main__":
    main()
