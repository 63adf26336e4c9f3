"""Seed statistics against scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ablations.report.stats import (
    DiffCI,
    paired_ci,
    summarise,
    t_quantile,
    verdict_for,
    welch_ci,
)


def test_summarise_uses_sample_std_and_ignores_nan():
    s = summarise([1.0, 2.0, math.nan, 4.0])
    assert (s.mean, s.n) == (pytest.approx(7 / 3), 3)
    assert s.std == pytest.approx(np.std([1, 2, 4], ddof=1))
    one = summarise([5.0])
    assert one.mean == 5.0 and math.isnan(one.std) and one.n == 1
    assert summarise([]).n == 0


def test_t_quantile_matches_tables():
    # Printed t-tables: t_{0.975} for df 1, 2 and 10.
    assert t_quantile(1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile(2) == pytest.approx(4.303, abs=1e-3)
    assert t_quantile(10) == pytest.approx(2.228, abs=1e-3)


def test_welch_by_hand():
    # a: mean 2, var 1, n 3 -> 1/3; b: mean 5, var 2, n 2 -> 1. se^2 = 4/3.
    # df = (4/3)^2 / ((1/3)^2 / 2 + 1^2 / 1) = (16/9) / (19/18) = 32/19.
    ci = welch_ci([1.0, 2.0, 3.0], [4.0, 6.0])
    assert ci.diff == pytest.approx(-3.0)
    assert ci.df == pytest.approx(32 / 19)
    half = float(stats.t.ppf(0.975, 32 / 19)) * math.sqrt(4 / 3)
    assert (ci.low, ci.high) == (pytest.approx(-3 - half), pytest.approx(-3 + half))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(70, 1, size=3 + seed), rng.normal(69, 2, size=4)
    ref = stats.ttest_ind(a, b, equal_var=False)
    ci = welch_ci(a, b)
    expect = ref.confidence_interval(0.95)
    assert (ci.low, ci.high, ci.df) == pytest.approx((expect.low, expect.high, ref.df))
    assert ci.has_ci and ci.method == "welch"


def test_paired_matches_scipy():
    a = {0: 70.1, 1: 71.3, 2: 69.8, 3: 70.4}
    b = {0: 69.0, 1: 70.9, 2: 69.1, 5: 99.0}  # seed 3 and 5 unshared: left out
    ci = paired_ci(a, b)
    ref = stats.ttest_rel([70.1, 71.3, 69.8], [69.0, 70.9, 69.1]).confidence_interval(0.95)
    assert (ci.low, ci.high) == (pytest.approx(ref.low), pytest.approx(ref.high))
    assert ci.n_a == 3 and ci.df == 2


def test_one_seed_gives_a_difference_without_ci():
    ci = welch_ci([70.0], [68.0, 69.0])
    assert ci.diff == pytest.approx(1.5) and not ci.has_ci and "2 complete seeds" in ci.note


def test_identical_values_give_a_zero_width_interval():
    ci = welch_ci([70.0, 70.0], [69.0, 69.0])
    assert (ci.low, ci.high) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("low", "high", "region", "verdict"),
    [
        (0.2, 1.0, (0, math.inf), "holds"),
        (-1.0, -0.2, (0, math.inf), "does not hold"),
        (-0.2, 1.0, (0, math.inf), "inconclusive"),
        (-0.5, 0.4, (-0.6, 0.6), "holds"),
        (0.7, 1.2, (-0.6, 0.6), "does not hold"),
        (-0.9, 0.9, (-0.6, 0.6), "inconclusive"),
        (math.nan, math.nan, (0, math.inf), "inconclusive"),
    ],
)
def test_verdict_regions(low, high, region, verdict):
    ci = DiffCI((low + high) / 2, low, high, 3.0, 3, 3, "welch")
    assert verdict_for(ci, *region) == verdict
