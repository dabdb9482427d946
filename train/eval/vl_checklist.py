"""VL-CheckList (Zhao et al., "VL-CheckList: Evaluating Pre-trained Vision-Language Models with
Objects, Attributes and Relations", 2022), read as its repository releases it: `ROOT/corpus/v1/
<type>/<corpus>.yaml` (e.g. `Object/Location/center/vg_obj.yaml`, `Attribute/color/vaw.yaml`,
`Relation/spatial/vg.yaml`) gives `ANNO_PATH` (a JSON under ROOT/data/) and `IMG_ROOT` (`vg/`,
`swig/`, `hake/`, relative to the image folder, its DATASETS.md layout); each JSON is a list of
`[image path relative to IMG_ROOT, {"POS": [captions], "NEG": [captions]}]`.

Scoring is its ITC task (vl_checklist/evaluate.py), the one a dual encoder has: an item is right
when s(image, POS[0]) > s(image, NEG[0]) (strict; the tie rule applies); items whose image is
missing are skipped (its DataLoader drops them silently; we count them); `limit` takes the
first N items of every corpus file (its MAX_NUM / 2).

Figures: `<type>/<corpus>/acc` per file, as its output JSONs; above that, every level of the
type path is the plain mean of the levels below it (`Object/Location/center/acc` over its
corpora, `Object/Location/acc` over center / mid / margin, `Object/acc` over Location and Size),
and `avg/acc` is the mean of Object, Attribute and Relation: the three-aspect figures of the
paper's tables. Its code reports per file only; the means are ours, written down here. A corpus
whose images are all missing gives no figure and is counted in `counts/empty_corpora`."""
from pathlib import Path

import yaml

from .pairwise import Item, ItemEvaluator, read_json
from .scoring import first_per_group, macro, pct

ASPECTS = ("Object", "Attribute", "Relation")


def corpus_files(root, version="v1", types=None, corpora=None):
    """-> [(type path, corpus name, yaml path)] of the release's corpus yamls, filtered."""
    base = Path(root) / "corpus" / version
    if not base.is_dir():
        raise FileNotFoundError(f"VL-CheckList: {base} does not exist (ROOT must be the VL-CheckList "
                                "checkout holding corpus/ and data/)")
    out = []
    for path in sorted(base.rglob("*.yaml")):
        kind = path.parent.relative_to(base).as_posix()
        if types and not any(kind == t.strip("/") or kind.startswith(t.strip("/") + "/") for t in types):
            continue
        if corpora and path.stem not in corpora:
            continue
        out.append((kind, path.stem, path))
    if not out:
        raise FileNotFoundError(f"VL-CheckList: no corpus yaml under {base} for types={types} "
                                f"corpora={corpora}")
    return out


def read_corpus_yaml(path):
    try:
        conf = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"VL-CheckList: {path} is not valid YAML ({e})") from None
    if not isinstance(conf, dict) or not {"ANNO_PATH", "IMG_ROOT"} <= set(conf):
        raise ValueError(f"VL-CheckList: {path} must give ANNO_PATH and IMG_ROOT")
    return conf


def load_vl_checklist(root, image_root, version="v1", types=None, corpora=None, path_of=None):
    """-> (items, {corpus group: images missing}, [corpus groups with no items])."""
    root, image_root = Path(root), Path(image_root)
    path_of = path_of or (lambda r, rel, where: str(Path(r) / rel))
    items, missing, empty = [], {}, []
    for kind, corpus, ypath in corpus_files(root, version, types, corpora):
        conf = read_corpus_yaml(ypath)
        ann = Path(path_of(root, conf["ANNO_PATH"], f"{ypath} ANNO_PATH"))
        if not ann.is_file():
            raise FileNotFoundError(f"VL-CheckList: {ypath} names ANNO_PATH {ann}, which does not exist")
        data = read_json(ann, "VL-CheckList")
        if not isinstance(data, list):
            raise ValueError(f"VL-CheckList: {ann} must be a list of [image, {{POS, NEG}}]")
        group, before = f"{kind}/{corpus}", len(items)
        img_root = path_of(image_root, conf["IMG_ROOT"], f"{ypath} IMG_ROOT")
        for n, rec in enumerate(data):
            where = f"{ann} item {n}"
            if not (isinstance(rec, list) and len(rec) == 2 and isinstance(rec[1], dict)):
                raise ValueError(f"{where}: expected [image path, {{\"POS\": [...], \"NEG\": [...]}}]")
            rel, texts = rec
            pos, neg = texts.get("POS"), texts.get("NEG")
            if not (isinstance(pos, list) and pos and isinstance(neg, list) and neg
                    and isinstance(pos[0], str) and isinstance(neg[0], str)):
                raise ValueError(f"{where}: POS and NEG must be non-empty lists of captions")
            img = path_of(img_root, rel, where)
            if not Path(img).is_file():
                missing[group] = missing.get(group, 0) + 1
                continue
            items.append(Item(img, pos[0], [neg[0]], group, meta={"type": kind, "corpus": corpus}))
        if len(items) == before:
            empty.append(group)
    return items, missing, empty


def tree_means(leaves):
    """{'A/b/c/corpus': acc} -> every ancestor level's plain mean of its children, bottom up."""
    levels, children = dict(leaves), {}
    for key in leaves:
        parts = key.split("/")
        for depth in range(1, len(parts)):
            children.setdefault("/".join(parts[:depth]), set()).add("/".join(parts[:depth + 1]))
    for node in sorted(children, key=lambda k: -k.count("/")):  # deepest first
        levels[node] = macro(levels[c] for c in sorted(children[node]))
    return levels


class VlCheckListEvaluator(ItemEvaluator):
    type_name = "vl_checklist"

    def __init__(self, root, image_root, types=None, corpora=None, version="v1", **common):
        """root: the VL-CheckList checkout (corpus/, data/); image_root: the folder holding its
        vg/, swig/, hake/ image folders; types: type paths to run (e.g. [Attribute/color,
        Relation]), default all; corpora: corpus names (vg, vaw, swig_agent, hake ...), default all."""
        super().__init__(**common)
        items, self.missing, self.empty = load_vl_checklist(root, image_root, version, types, corpora,
                                                            self.path)
        self.items = first_per_group(items, self.limit)
        if not self.items:
            raise ValueError(f"VL-CheckList: no item under {root} has its image under {image_root} "
                             f"(missing per corpus: {self.missing})")

    def score(self, model, tokenizer, preprocess, device="cpu"):
        hits, scores, groups = self.scored(model, tokenizer, preprocess, device)
        levels = tree_means({g: pct(h) for g, h in groups.items()})
        metrics = {f"{k}/acc": v for k, v in sorted(levels.items())}
        metrics["avg/acc"] = macro(levels[a] for a in ASPECTS if a in levels)
        counts = {"items": len(hits), "skipped_missing_image": sum(self.missing.values()),
                  "empty_corpora": len(self.empty), **{f"{g}/items": len(h) for g, h in groups.items()}}
        return self.result(metrics, counts, self.examples(hits, scores, "vl_checklist"))
