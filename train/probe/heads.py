"""Probe heads: linear, and 2- / 4-layer MLPs with SwiGLU (Pantazopoulos et al., "Lost in Space",
2024, Table 3).

Every task here asks about an (image, statement) pair, and a CLIP image tower never sees the
statement (the paper's Q-Former did: its query tokens already mix in the text). So the
probe takes both the image features x and the statement features t:

- `linear`: out = C((A x) * (B t)) + U x + V t + b, a low-rank bilinear form. For any fixed
  statement it is a linear function of the image features, which is what a linear probe
  must stay; a plain linear map of [x; t] could not solve RCM at all, because with
  balanced data neither x alone nor t alone carries the label.
- `mlp2` / `mlp4`: 2 or 4 weight layers on [x; t] with SwiGLU between them (the gate
  multiplies two projections, so interactions are learnable there too).

Image features are standardised with training-set statistics (a fixed affine map, so the
linear probe stays linear)."""
import torch
import torch.nn.functional as F
from torch import nn


class Standardize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone().clamp(min=1e-6))

    def forward(self, x):
        return (x - self.mean) / self.std


class SwiGLULayer(nn.Module):
    """Linear to 2h, silu(a) * b: one weight layer followed by the SwiGLU non-linearity."""

    def __init__(self, d_in, hidden):
        super().__init__()
        self.proj = nn.Linear(d_in, 2 * hidden)

    def forward(self, x):
        a, b = self.proj(x).chunk(2, -1)
        return F.silu(a) * b


class TextKeys(nn.Module):
    """The `embed` text mode: one learned vector per part of a key ("apple|4" = object, cell),
    concatenated. Keys unseen in training map to a shared 'unknown' row."""

    def __init__(self, train_keys, dim=32):
        super().__init__()
        parts = [k.split("|") for k in train_keys]
        n = len(parts[0])
        self.vocab = [{v: i + 1 for i, v in enumerate(sorted({p[j] for p in parts}))} for j in range(n)]
        self.tables = nn.ModuleList(nn.Embedding(len(v) + 1, dim) for v in self.vocab)
        self.dim = dim * n

    def ids(self, keys):
        return torch.tensor([[self.vocab[j].get(p, 0) for j, p in enumerate(k.split("|"))] for k in keys])

    def forward(self, ids):
        return torch.cat([t(ids[:, j]) for j, t in enumerate(self.tables)], -1)


class Probe(nn.Module):
    def __init__(self, kind: str, d_img: int, d_txt: int, d_out: int, hidden: int = 256, rank: int = 64):
        super().__init__()
        self.kind, self.d_txt = kind, d_txt
        if kind == "linear":
            self.U = nn.Linear(d_img, d_out)
            if d_txt:
                self.V = nn.Linear(d_txt, d_out, bias=False)
                self.A = nn.Linear(d_img, rank, bias=False)
                self.B = nn.Linear(d_txt, rank, bias=False)
                self.C = nn.Linear(rank, d_out, bias=False)
                nn.init.zeros_(self.C.weight)
            # start from "knows nothing" (as logistic regression does): random weights on
            # thousands of flattened features would add noise that takes many steps to decay
            nn.init.zeros_(self.U.weight)
        elif kind in ("mlp2", "mlp4"):
            depth = int(kind[3:])
            layers, d = [], d_img + d_txt
            for _ in range(depth - 1):
                layers.append(SwiGLULayer(d, hidden))
                d = hidden
            layers.append(nn.Linear(d, d_out))
            self.mlp = nn.Sequential(*layers)
        else:
            raise ValueError(f"probe head '{kind}': use linear | mlp2 | mlp4")

    def forward(self, x, t=None):
        if self.kind == "linear":
            out = self.U(x)
            if self.d_txt:
                out = out + self.V(t) + self.C(self.A(x) * self.B(t))
            return out
        return self.mlp(torch.cat([x, t], -1) if self.d_txt else x)


class TextTable(nn.Module):
    """The `text_tower` mode: frozen text-tower embeddings looked up by row."""

    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", table, persistent=False)
        self.dim = table.shape[1]

    def forward(self, rows):
        return self.table[rows]
