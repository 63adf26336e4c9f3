"""Paired / Welch choice, CI half-width by hand; power, resolvable difference and seeds needed
at 80% power against scipy's noncentral t, published sample sizes and a simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ablations.report.power import (
    PAPER_MARGIN,
    POWER,
    half_width,
    min_resolvable_difference,
    power,
    resolution,
    seeds_needed,
)
from ablations.report.stats import diff_to_reference

# Printed t-table values t_{0.975, df}, used in the arithmetic below.
T975 = {2: 4.303, 4: 2.776, 5: 2.571, 6: 2.447, 8: 2.306, 10: 2.228, 12: 2.179}


def test_diff_to_reference_pairs_on_identical_seeds_by_hand():
    # variant 70.0, 71.0, 72.5; reference 69.5, 70.0, 71.5 -> d = 0.5, 1.0, 1.0
    # mean(d) = 2.5/3 = 0.8333; sd(d) = sqrt(((-1/3)^2 + 2*(1/6)^2) / 2) = sqrt(1/12) = 0.2887
    # half = t_{0.975,2} * 0.2887 / sqrt(3) = 4.303 * 0.16667 = 0.7172 -> CI [0.116, 1.551]
    a, b = {0: 70.0, 1: 71.0, 2: 72.5}, {0: 69.5, 1: 70.0, 2: 71.5}
    ci = diff_to_reference(a, b)
    assert ci.method == "paired" and ci.df == 2 and ci.n_a == ci.n_b == 3
    assert ci.diff == pytest.approx(0.8333, abs=1e-4)
    assert (ci.low, ci.high) == (pytest.approx(0.116, abs=2e-3), pytest.approx(1.551, abs=2e-3))
    # Unpaired on the same numbers: var(a) = 1.5833, var(b) = 1.0833 -> va = 0.5278,
    # vb = 0.3611, se = sqrt(0.8889) = 0.9428, df = 0.8889^2 / (va^2/2 + vb^2/2) = 3.864:
    # the shared seed noise stays in, and the CI includes 0 where the paired one does not.
    welch = diff_to_reference(a, {3: 69.5, 4: 70.0, 5: 71.5})
    assert welch.method == "welch" and welch.diff == pytest.approx(0.8333, abs=1e-4)
    assert welch.df == pytest.approx(3.864, abs=1e-3) and welch.low < 0 < ci.low


def test_diff_to_reference_falls_back_to_welch():
    partial = diff_to_reference({0: 70.0, 1: 71.0, 2: 72.0}, {0: 69.0, 1: 70.0})
    assert partial.method == "welch" and partial.n_a == 3 and partial.n_b == 2
    nan_seed = diff_to_reference({0: 70.0, 1: math.nan, 2: 71.0}, {0: 69.0, 1: 70.0, 2: 70.5})
    assert nan_seed.method == "welch" and nan_seed.n_a == 2  # seed 1 failed: not complete
    one = diff_to_reference({0: 70.0}, {0: 69.0})
    assert not one.has_ci and one.diff == pytest.approx(1.0)


def test_half_width_by_hand():
    # paired, sd of differences 0.5, 3 seeds: 4.303 * 0.5 / sqrt(3) = 1.2421
    assert half_width(0.5, 3, paired=True) == pytest.approx(1.2421, abs=1e-3)
    # unpaired, per-variant sd 0.5, 3 seeds each: df = 4, 2.776 * 0.5 * sqrt(2/3) = 1.1334
    assert half_width(0.5, 3, paired=False) == pytest.approx(1.1334, abs=1e-3)
    assert math.isnan(half_width(0.5, 1, paired=True))
    for n, df in ((5, 4), (6, 5)):  # the printed table values, from our t quantiles
        assert half_width(0.5, n, True) == pytest.approx(T975[df] * 0.5 / math.sqrt(n), abs=1e-3)


def _scipy_power(delta: float, sd: float, n: int, paired: bool) -> float:
    """Two-sided t-test power straight from scipy's noncentral t: P(T > c) + P(T < -c)."""
    df = n - 1 if paired else 2 * (n - 1)
    se = sd / math.sqrt(n) if paired else sd * math.sqrt(2 / n)
    crit, nc = stats.t.ppf(0.975, df), delta / se
    lower = stats.nct.cdf(-crit, df, nc)
    if not math.isfinite(lower):  # scipy's cdf fails far in the tail at df = 1: by symmetry
        lower = stats.nct.sf(crit, df, -nc)
    return stats.nct.sf(crit, df, nc) + lower


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_power_and_resolvable_difference_match_scipy_nct(n, paired):
    for delta in (0.1, 0.5, 1.0):
        assert power(delta, 0.5, n, paired) == pytest.approx(_scipy_power(delta, 0.5, n, paired))
    d = min_resolvable_difference(0.5, n, paired)
    assert POWER == 0.8 and _scipy_power(d, 0.5, n, paired) == pytest.approx(0.8, abs=1e-6)
    assert d > half_width(0.5, n, paired)  # the CI half-width is resolved far less often:
    assert 0.5 < _scipy_power(half_width(0.5, n, paired), 0.5, n, paired) < 0.7  # 51-68% here


def test_seeds_needed_matches_published_sample_sizes():
    # G*Power / Cohen (1988), two-sided alpha 0.05, power 0.8: two independent groups need
    # 64 per group at d = 0.5 and 26 at d = 0.8; a paired (one-sample) test 34 at d_z = 0.5.
    assert seeds_needed(1.0, 0.5, paired=False) == 64
    assert seeds_needed(1.0, 0.8, paired=False) == 26
    assert seeds_needed(1.0, 0.5, paired=True) == 34
    # paired, sd 0.5, the paper's margin 0.6 (d_z = 1.2): the first n with power >= 0.8
    n = seeds_needed(0.5, PAPER_MARGIN, paired=True)
    assert _scipy_power(0.6, 0.5, n, True) >= 0.8 > _scipy_power(0.6, 0.5, n - 1, True)
    assert n == 8 and seeds_needed(math.nan) is None and seeds_needed(0.0) == 3  # claims need 3
    assert seeds_needed(100.0, 0.6) is None  # more than MAX_SEEDS


def test_resolvable_difference_is_resolved_80_percent_of_the_time():
    """Monte Carlo of the report's own paired interval: 20,000 sweeps of 5 seeds."""
    rng = np.random.default_rng(0)
    n, sd = 5, 0.5
    d = min_resolvable_difference(sd, n, paired=True)
    diffs = rng.normal(d, sd, size=(20_000, n))  # per-seed differences a_s - b_s
    half = stats.t.ppf(0.975, n - 1) * diffs.std(axis=1, ddof=1) / math.sqrt(n)
    excluded = np.abs(diffs.mean(axis=1)) > half
    assert excluded.mean() == pytest.approx(0.8, abs=0.01)


def test_resolution_uses_the_same_pairing_as_the_ci():
    a, b = {0: 70.0, 1: 71.0, 2: 72.5}, {0: 69.5, 1: 70.0, 2: 71.5}
    r = resolution(a, b)
    # sd(d) = sqrt(1/12) = 0.2887; half = 4.303 * 0.2887 / sqrt(3) = 0.7172 (the CI above)
    assert r.paired and r.n_seeds == 3 and r.spread_std == pytest.approx(0.2887, abs=1e-4)
    ci = diff_to_reference(a, b)
    assert r.half_width == pytest.approx((ci.high - ci.low) / 2)
    assert r.min_difference == pytest.approx(min_resolvable_difference(r.spread_std, 3, True))
    # d_z = 0.6 / 0.2887 = 2.08: n = 4 gives power 0.72, n = 5 gives 0.90 (scipy nct)
    assert _scipy_power(0.6, r.spread_std, 4, True) < 0.8 < _scipy_power(0.6, r.spread_std, 5, True)
    assert r.seeds_for_margin == 5 and r.margin == 0.6
    w = resolution(a, {5: 69.5, 6: 70.0})
    # pooled sd = sqrt((1.2583^2 + 0.3536^2) / 2) = sqrt((1.5833 + 0.125) / 2) = 0.9242
    assert not w.paired and w.n_seeds == 2 and w.spread_std == pytest.approx(0.9242, abs=1e-4)


@pytest.mark.parametrize(("n", "sd", "floor", "delta"), [(3, 1.0, 0.9, 1.5), (5, 1.0, 1.0, 1.2),
                                                          (3, 2.0, 0.5, 4.0)])  # fmt: skip
def test_floored_power_is_the_floored_rule_monte_carlo(n, sd, floor, delta):
    """The report's paired interval with its floor, max(s^2, floor), simulated."""
    rng = np.random.default_rng(1)
    diffs = rng.normal(delta, sd, size=(40_000, n))
    var = np.maximum(diffs.var(axis=1, ddof=1), floor)
    half = stats.t.ppf(0.975, n - 1) * np.sqrt(var / n)
    observed = float((np.abs(diffs.mean(axis=1)) > half).mean())
    assert power(delta, sd, n, True, floor_var=floor) == pytest.approx(observed, abs=0.01)
    unfloored = power(delta, math.sqrt(max(sd**2, floor)), n, True)  # the old model
    if floor >= 0.8 * sd**2:  # a floor near the seeds' variance: it overstated the power
        assert unfloored > observed + 0.02


def test_floored_resolvable_difference_is_detected_80_percent():
    rng = np.random.default_rng(2)
    n, sd, floor = 5, 1.0, 1.0
    d = min_resolvable_difference(sd, n, True, floor_var=floor)
    diffs = rng.normal(d, sd, size=(40_000, n))
    var = np.maximum(diffs.var(axis=1, ddof=1), floor)
    excluded = np.abs(diffs.mean(axis=1)) > stats.t.ppf(0.975, n - 1) * np.sqrt(var / n)
    assert excluded.mean() == pytest.approx(0.8, abs=0.01)
    assert seeds_needed(sd, 0.6, True, floor_var=floor) > seeds_needed(sd, 0.6, True)
