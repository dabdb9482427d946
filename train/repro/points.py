"""One evaluation point of the science stage: a model (a trainer checkpoint, an exported weights
file, the seeded random init of a run, or a WiSE-FT blend of two weights files) scored on the
reproduction's held-out SPEC sets and object zero-shot, with every set's score kept for paired
comparisons. Each point writes one JSON file; a point whose file exists is not recomputed."""
import json
import os
from pathlib import Path

import torch

from train.eval.load import initial_of, load, load_weights
from train.eval.wise_ft import interpolate

from .evaluate import load_model, spec_scores, zeroshot_scores


def model_of(point):
    """-> (model, preprocess, tokenizer) of a point description (a dict, see points_of_*)."""
    kind = point["kind"]
    if kind == "checkpoint":
        model, pre, tok, _ = load(point["path"])
    elif kind == "initial":
        model, pre, tok, _ = initial_of(point["path"])
    elif kind == "weights":
        model, pre, tok = load_model(point["path"])
    elif kind == "wise":
        model, pre, tok = load_model(point["path"])
        blended = interpolate(model.state_dict(), load_weights(point["finetuned"]), point["alpha"])
        model.load_state_dict(blended)
    else:
        raise ValueError(f"unknown point kind {kind!r}")
    model.eval()
    return model, pre, tok


def evaluate_point(point):
    """Score one point and write point["out"] (atomically: a stopped run never leaves half a
    file that a rerun would trust)."""
    out = Path(point["out"])
    if out.is_file():
        return str(out)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, pre, tok = model_of(point)
    sets = {}
    data = Path(point["data"])
    scores = spec_scores(model, pre, tok, data / "spec_heldout", sets, limit=point.get("limit"))
    scores.update(zeroshot_scores(model, pre, tok, data / "zeroshot", sets))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"point": point, "scores": scores, "sets": sets}))
    os.replace(tmp, out)
    return str(out)


def read_point(path):
    return json.loads(Path(path).read_text())
