"""Two-process worker for tests/test_losses_distributed.py.

    torchrun --standalone --nproc_per_node 2 tests/dist_losses_worker.py OUT_DIR

Every rank builds its own slice of a deterministic global batch (uneven caption counts, and in
one case uneven image and pair counts), runs train.step.forward_losses through a
DistributedDataParallel-wrapped tiny CLIP (accelerate's `prepare` wraps the model in exactly
this DDP), backpropagates, and saves the rank-averaged logs and the parameter gradients. The
test recomputes everything in one process on the concatenated batch. Afterwards both ranks
get bad input on ONE rank only and must raise together (no rank left hanging), and, when
DeepSpeed is installed, the default case runs again under DeepSpeed ZeRO."""
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dist_losses_lib import concat_rank_batches  # noqa: E402
from train import distributed as D  # noqa: E402
from train.config import LossConfig  # noqa: E402
from train.losses import NonFiniteFeatures  # noqa: E402
from train.step import forward_losses  # noqa: E402

IMG_DIM, CTX, VOCAB = 12, 5, 40

# per case: dtype, loss config changes, per-rank (pairs, [(K captions, images) per set])
CASES = {
    "f64_default": (torch.float64, {}, [(4, [(3, 3), (9, 2), (2, 1)]), (4, [(4, 4), (2, 2)])]),
    "f64_set_nomask": (torch.float64, {"hn_negatives": "set", "mask_duplicates": False},
                       [(4, [(3, 3), (9, 2), (2, 1)]), (4, [(4, 4), (2, 2)])]),
    "f64_pairs_inclip": (torch.float64,
                         {"hn_negatives": "step+pairs", "sets_in_clip_loss": True, "hn_weight": 0.5},
                         [(4, [(3, 3), (9, 2), (2, 1)]), (4, [(4, 4), (2, 2)])]),
    "f64_uneven": (torch.float64, {}, [(3, [(3, 3), (9, 2)]), (6, [(4, 4), (2, 2), (7, 3), (2, 1)])]),
    "f32_default": (torch.float32, {}, [(4, [(3, 3), (9, 2), (2, 1)]), (4, [(4, 4), (2, 2)])]),
}


class TinyCLIP(torch.nn.Module):
    """The open_clip CLIP interface (normalised features, exp'd logit scale) in a few weights."""
    def __init__(self, scale_shape=()):
        super().__init__()
        self.visual = torch.nn.Sequential(torch.nn.Linear(IMG_DIM, 10), torch.nn.Tanh(),
                                          torch.nn.Linear(10, 6))
        self.token_embedding = torch.nn.Embedding(VOCAB, 10)
        self.text_projection = torch.nn.Linear(10, 6)
        self.logit_scale = torch.nn.Parameter(torch.full(scale_shape, 2.5))

    def forward(self, image, text):
        txt = self.text_projection(torch.tanh(self.token_embedding(text).mean(1)))
        return F.normalize(self.visual(image), dim=-1), F.normalize(txt, dim=-1), self.logit_scale.exp()


def make_model(dtype, scale_shape=()):
    torch.manual_seed(0)
    return TinyCLIP(scale_shape).to(dtype)


def rank_batch(case, r, dtype):
    """Rank r's slice. Contents come from a small vocabulary of keys, the same key meaning the
    same pixels/tokens on every rank, so duplicates occur across sets and across ranks."""
    n_pairs, shapes = CASES[case][2][r]
    g = torch.Generator().manual_seed(1000 + r)
    pixels = torch.randn(30, IMG_DIM, generator=torch.Generator().manual_seed(1), dtype=dtype)
    words = torch.randint(0, VOCAB, (30, CTX), generator=torch.Generator().manual_seed(2))
    pairs = {"images": torch.randn(n_pairs, IMG_DIM, generator=g, dtype=dtype),
             "tokens": torch.randint(0, VOCAB, (n_pairs, CTX), generator=g)}
    ix = {k: [] for k in ("img_set", "img_cap", "img_key", "cap_set", "cap_img", "cap_key")}
    for sid, (k, n_img) in enumerate(shapes):
        c0, i0 = len(ix["cap_set"]), len(ix["img_set"])
        text_keys = torch.randperm(12, generator=g)[:k].tolist()
        img_keys = torch.randperm(12, generator=g)[:n_img].tolist()
        with_img = torch.randperm(k, generator=g)[:n_img].tolist()   # the rest are text-only
        links = [-1] * k
        for j, c in enumerate(with_img):
            ix["img_set"].append(sid), ix["img_cap"].append(c0 + c), ix["img_key"].append(img_keys[j])
            links[c] = i0 + j
        ix["cap_set"] += [sid] * k
        ix["cap_key"] += text_keys
        ix["cap_img"] += links
    sets = {key: torch.tensor(v, dtype=torch.long) for key, v in ix.items()}
    sets["images"] = pixels[sets["img_key"]]
    sets["tokens"] = words[sets["cap_key"]]
    return {"pairs": pairs, "sets": sets}


def global_batch(case, dtype):
    """The concatenation of every rank's slice, indices renumbered (what one process sees)."""
    parts = [rank_batch(case, r, dtype) for r in range(len(CASES[case][2]))]
    return concat_rank_batches(parts)


def loss_cfg(case):
    return replace(LossConfig(), **CASES[case][1])


def run_case(model, batch, case):
    """-> (logs averaged over ranks as the trainer does, {param name: grad})."""
    model.zero_grad(set_to_none=True)
    total, logs = forward_losses(model, batch, loss_cfg(case))
    total.backward()
    logs = {k: D.mean_over_ranks(v) for k, v in logs.items()}
    inner = model.module if hasattr(model, "module") else model
    return logs, {n: p.grad.detach().clone() for n, p in inner.named_parameters()}


def bad_input_round(r, out):
    """Bad data on rank 1 only: both ranks must raise the same error, then still talk."""
    results = {}
    model = make_model(torch.float64)
    for name in ("nan_image", "one_caption_set", "caption_outside_set"):
        batch = rank_batch("f64_default", r, torch.float64)
        s = batch["sets"]
        if r == 1 and name == "nan_image":
            s["images"] = s["images"].clone()
            s["images"][1, 3] = float("nan")
        if r == 1 and name == "one_caption_set":
            # split set 1 (2 captions, 2 images) into two sets of one caption each
            c, i = (s["cap_set"] == 1).nonzero()[1, 0], (s["img_set"] == 1).nonzero()[:, 0]
            i = i[s["img_cap"][i] == c]
            s["cap_set"], s["img_set"] = s["cap_set"].clone(), s["img_set"].clone()
            s["cap_set"][c], s["img_set"][i] = 2, 2
        if r == 1 and name == "caption_outside_set":
            s["img_cap"] = s["img_cap"].clone()
            s["img_cap"][0] = int((s["cap_set"] == 1).nonzero()[0])
        try:
            forward_losses(model, batch, loss_cfg("f64_default"))
            results[name] = "no error"
        except (NonFiniteFeatures, ValueError) as e:
            results[name] = f"{type(e).__name__}: {e}"
        dist.barrier()   # reached by both ranks only if neither hangs in a collective
    return results


def deepspeed_stages():
    """DeepSpeed is an optional extra: exercised when installed. HNCLIP_TEST_DEEPSPEED lists
    the ZeRO stages ("2" by default, to stay in the test budget; "2,3" for both; "off")."""
    import importlib.util
    want = os.environ.get("HNCLIP_TEST_DEEPSPEED", "2")
    if want == "off" or importlib.util.find_spec("deepspeed") is None:
        return []
    return [int(x) for x in want.split(",")]


def deepspeed_round(r):
    """The default case under DeepSpeed ZeRO (float32, DeepSpeed's own gradient reduction
    instead of DDP's): logs and full gradients via deepspeed.utils.safe_get_full_grad.
    logit_scale gets shape (1,) here: DeepSpeed 0.19.8 cannot broadcast 0-dim parameters
    (`view(torch.uint8)` in engine._broadcast_model), as open_clip's own logit_scale is."""
    import deepspeed
    from deepspeed.utils import safe_get_full_grad
    results = {}
    for stage in deepspeed_stages():
        model = make_model(torch.float32, scale_shape=(1,))
        cfg = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1,
               "zero_optimization": {"stage": stage}, "zero_allow_untested_optimizer": True,
               "gradient_clipping": 0.0}    # DeepSpeed clips at 1.0 unless told otherwise
        engine, *_ = deepspeed.initialize(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
                                          config=cfg)
        total, logs = forward_losses(engine, rank_batch("f32_default", r, torch.float32),
                                     loss_cfg("f32_default"))
        engine.backward(total)
        grads = {n: safe_get_full_grad(p).detach().clone() for n, p in engine.module.named_parameters()}
        results[f"zero{stage}"] = ({k: D.mean_over_ranks(v) for k, v in logs.items()}, grads)
        engine.step()
        engine.destroy()
    return results


def main():
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    r = dist.get_rank()
    results = {}
    for case, (dtype, _, _) in CASES.items():
        model = torch.nn.parallel.DistributedDataParallel(make_model(dtype))
        results[case] = run_case(model, rank_batch(case, r, dtype), case)
    results["bad_input"] = bad_input_round(r, out)
    torch.save(results, out / f"rank{r}.pt")
    if deepspeed_stages():
        torch.save(deepspeed_round(r), out / f"deepspeed_rank{r}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
