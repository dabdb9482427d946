"""Probe training: features that encode the answer are read near-perfectly; shuffled labels stay
at chance; the linear head solves a matching task only through its image x statement term."""
import pytest
import torch

from train.probe.heads import Probe, Standardize, TextTable
from train.probe.search import ProbeModel, Settings, SplitData, search


@pytest.fixture(autouse=True)
def one_thread():
    # tiny matmuls: a second thread only adds contention on a shared 2-core machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _frozen(table, d_txt=0, texts=None, head="linear"):
    std = Standardize(table.mean(0), table.std(0))
    return lambda: ProbeModel(Probe(head, table.shape[1], d_txt, 1, hidden=32, rank=16), std,
                              TextTable(texts) if texts is not None else None, table=table)


def _splits(n_per, y_fn, gen, txt=None):
    """Rows 0..3n-1 of one feature table, split train/val/test."""
    rows = torch.arange(3 * n_per)
    y = y_fn(rows)
    return {s: SplitData(img=rows[i * n_per:(i + 1) * n_per],
                         txt=None if txt is None else txt[i * n_per:(i + 1) * n_per],
                         y=y[i * n_per:(i + 1) * n_per], categories=["c"] * n_per)
            for i, s in enumerate(("train", "val", "test"))}


def _settings(**kw):
    """conf/probe.yaml's search settings, with the test's own changes."""
    base = dict(lrs=[3e-2], max_epochs=30, patience=5, batch_size=128, weight_decay=0.01, warmup=0.1,
                w_giou=2.0, w_l1=5.0, seed=0)
    return Settings(**{**base, **kw})


SET = _settings(max_epochs=15, patience=5, batch_size=64, seed=0)


def test_linear_probe_reads_features_that_encode_the_answer():
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(1200, generator=g) < 0.5).float()
    x = torch.randn(1200, 24, generator=g)
    x[:, 3] += 3 * (2 * y - 1)  # one feature carries the answer, with a margin; the rest is noise
    data = _splits(400, lambda r: y[r], g)
    res = search(_frozen(x), data, "binary", SET)
    assert res.test >= 0.97, res


def test_shuffled_labels_stay_at_chance():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1800, 24, generator=g)
    y = (x[:, 3] > 0).float()[torch.randperm(1800, generator=g)]  # the link to x is destroyed
    data = _splits(600, lambda r: y[r], g)
    for head in ("linear", "mlp2"):
        res = search(_frozen(x, head=head), data, "binary", SET)
        assert abs(res.test - 0.5) < 0.08, (head, res.test)  # 600 test items: sd 0.02


def test_linear_probe_matches_image_cell_to_statement_cell():
    """An RCM-like oracle: the image features one-hot the true cell, the statement one-hot the
    claimed cell, label = same cell. Neither side alone is informative."""
    g = torch.Generator().manual_seed(2)
    n = 1800
    true = torch.randint(0, 9, (n,), generator=g)
    match = torch.rand(n, generator=g) < 0.5
    claimed = torch.where(match, true, (true + torch.randint(1, 9, (n,), generator=g)) % 9)
    x = torch.nn.functional.one_hot(true, 9).float() + 0.05 * torch.randn(n, 9, generator=g)
    texts = torch.eye(9)
    data = _splits(600, lambda r: match[r].float(), g, txt=claimed)
    res = search(_frozen(x, d_txt=9, texts=texts), data, "binary",
                 _settings(max_epochs=30, patience=8, batch_size=64))
    assert res.test >= 0.95, res
