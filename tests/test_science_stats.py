"""The statistics under the science report: paired differences, seeds, verdicts, rank tests."""
import math

import pytest
from scipy.stats import kendalltau

from train.repro import stats


def test_paired_difference_and_its_standard_error():
    a, b = [1.0, 0.5, 1.0, 0.0], [0.5, 0.5, 0.0, 0.0]
    d, se = stats.paired(a, b)
    diffs = [50.0, 0.0, 100.0, 0.0]
    m = sum(diffs) / 4
    assert d == pytest.approx(m)
    assert se == pytest.approx(math.sqrt(sum((x - m) ** 2 for x in diffs) / 3 / 4))
    with pytest.raises(ValueError, match="not the same sets"):
        stats.paired([1.0], [1.0, 0.0])


def test_seeded_difference_adds_seed_spread_to_unit_noise():
    base = [0.0, 0.0, 1.0, 1.0]
    runs = [[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]      # +25 and +50 points
    est = stats.seeded_difference(runs, base)
    assert est["per_seed"] == pytest.approx([25.0, 50.0])
    assert est["diff"] == pytest.approx(37.5)
    assert est["se_seeds"] == pytest.approx(12.5)              # sd 17.68 / sqrt 2
    assert est["se"] == pytest.approx(math.hypot(est["se_units"], 12.5))
    one = stats.seeded_difference(runs[:1], base)
    assert one["se_seeds"] == 0.0 and one["se"] == pytest.approx(one["se_units"])


@pytest.mark.parametrize("diff,se,verdict", [(0.2, 0.5, "holds"), (-1.8, 0.5, "undecided"),
                                             (-4.0, 0.5, "fails"), (3.0, 0.4, "fails")])
def test_within_band_decides_from_the_95_percent_interval(diff, se, verdict):
    out = stats.within_band({"diff": diff, "se": se}, 2.0)
    assert out["verdict"] == verdict
    assert out["ci95"] == pytest.approx([diff - 1.96 * se, diff + 1.96 * se])


def test_at_least():
    assert stats.at_least({"diff": 30.0, "se": 1.0}, 20)["verdict"] == "holds"
    assert stats.at_least({"diff": 21.0, "se": 1.0}, 20)["verdict"] == "undecided"
    assert stats.at_least({"diff": 10.0, "se": 1.0}, 20)["verdict"] == "fails"


def test_holm_adjustment():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = stats.holm([float("nan"), 0.5])
    assert out[0] != out[0] and out[1] == pytest.approx(0.5)


def test_kendall_matches_scipy_and_refuses_constant_series():
    a, b = [1, 2, 3, 4, 5, 5], [2, 1, 4, 3, 6, 6]
    tau, p = stats.kendall(a, b)
    ref = kendalltau(a, b)
    assert tau == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    assert all(x != x for x in stats.kendall([1, 2, 3], [4, 4, 4]))
    assert all(x != x for x in stats.kendall([1, 2], [3, 4]))       # too few points
    assert stats.kendall([1, None, 3, 4], [1, 9, 3, 4])[0] == pytest.approx(1.0)
