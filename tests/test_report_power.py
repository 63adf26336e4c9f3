"""Paired / Welch choice, minimum resolvable difference and seeds needed, by hand."""

from __future__ import annotations

import math

import pytest

from ablations.report.power import (
    PAPER_MARGIN,
    min_resolvable_difference,
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


def test_min_resolvable_difference_by_hand():
    # paired, sd of differences 0.5, 3 seeds: 4.303 * 0.5 / sqrt(3) = 1.2421
    assert min_resolvable_difference(0.5, 3, paired=True) == pytest.approx(1.2421, abs=1e-3)
    # unpaired, per-variant sd 0.5, 3 seeds each: df = 4, 2.776 * 0.5 * sqrt(2/3) = 1.1334
    assert min_resolvable_difference(0.5, 3, paired=False) == pytest.approx(1.1334, abs=1e-3)
    assert math.isnan(min_resolvable_difference(0.5, 1, paired=True))


def test_seeds_needed_by_hand():
    # paired, sd 0.5, margin 0.6: n=5 -> 2.776 * 0.5 / 2.236 = 0.621 > 0.6;
    #                              n=6 -> 2.571 * 0.5 / 2.449 = 0.525 <= 0.6  => 6
    assert seeds_needed(0.5, 0.6, paired=True) == 6
    # unpaired, sd 0.5: n=6 -> df 10: 2.228 * 0.5 * sqrt(2/6) = 0.643 > 0.6;
    #                   n=7 -> df 12: 2.179 * 0.5 * sqrt(2/7) = 0.582 <= 0.6  => 7
    assert seeds_needed(0.5, 0.6, paired=False) == 7
    for n, df in ((5, 4), (6, 5)):  # the table values above, from our t quantiles
        half = min_resolvable_difference(0.5, n, True)
        assert half == pytest.approx(T975[df] * 0.5 / math.sqrt(n), abs=1e-3)
    assert seeds_needed(0.0) == 2 and seeds_needed(math.nan) is None
    assert PAPER_MARGIN == 0.6


def test_resolution_uses_the_same_pairing_as_the_ci():
    a, b = {0: 70.0, 1: 71.0, 2: 72.5}, {0: 69.5, 1: 70.0, 2: 71.5}
    r = resolution(a, b)
    # sd(d) = sqrt(1/12) = 0.2887; half = 4.303 * 0.2887 / sqrt(3) = 0.7172 (the CI above)
    assert r.paired and r.n_seeds == 3 and r.spread_std == pytest.approx(0.2887, abs=1e-4)
    ci = diff_to_reference(a, b)
    assert r.min_difference == pytest.approx((ci.high - ci.low) / 2)
    # n=4: t3=3.182 * 0.2887/2 = 0.459 <= 0.6 ; n=3: 0.717 > 0.6  => 4 seeds
    assert r.seeds_for_margin == 4 and r.margin == 0.6
    w = resolution(a, {5: 69.5, 6: 70.0})
    # pooled sd = sqrt((1.2583^2 + 0.3536^2) / 2) = sqrt((1.5833 + 0.125) / 2) = 0.9242
    assert not w.paired and w.n_seeds == 2 and w.spread_std == pytest.approx(0.9242, abs=1e-4)
