"""Seed statistics: mean ± sample std, and 95% confidence intervals of differences.

Method used by the report (``diff_to_reference``): **Welch's t-interval on independent
seeds.** For variant ``a`` and reference ``b`` with complete seeds ``n_a, n_b >= 2``::

    d  = mean(a) - mean(b)
    se = sqrt(s_a^2 / n_a + s_b^2 / n_b)                  (s: sample std, ddof=1)
    df = se^4 / ((s_a^2/n_a)^2 / (n_a-1) + (s_b^2/n_b)^2 / (n_b-1))   (Welch-Satterthwaite)
    CI = d ± t_{0.975, df} * se

Why not paired by seed: a seed fixes the data order and augmentation, but two architectures
draw different initial weights from it, so seed-pairs are only weakly matched; pairing would
also drop every seed that one of the two variants lacks (partial sweeps) and halve the degrees
of freedom. Welch assumes neither equal variances nor equal seed counts. ``paired_ci`` is
provided (and tested) for callers who want the paired interval on shared seeds.

With fewer than 2 complete seeds in either group the difference is reported with no interval
(a sample variance needs two values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
NO_CI_NOTE = "no CI: needs >= 2 complete seeds in both variants"


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof=1; NaN for n < 2) and count of finite values."""

    mean: float
    std: float
    n: int


def summarise(values: Sequence[float]) -> Summary:
    """Summary of the finite values in ``values``."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Summary(math.nan, math.nan, 0)
    std = float(x.std(ddof=1)) if x.size >= 2 else math.nan
    return Summary(float(x.mean()), std, int(x.size))


@dataclass(frozen=True)
class DiffCI:
    """Difference of means ``a - b`` with a confidence interval (NaN bounds when none)."""

    diff: float
    low: float
    high: float
    df: float
    n_a: int
    n_b: int
    method: str
    note: str = ""

    @property
    def has_ci(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)


def t_quantile(df: float, level: float = LEVEL) -> float:
    """Two-sided Student-t critical value, e.g. 12.706 for df=1 at 95%."""
    return float(stats.t.ppf(0.5 + level / 2, df))


def _interval(diff: float, se: float, df: float, level: float) -> tuple[float, float]:
    half = t_quantile(df, level) * se if se > 0 else 0.0  # identical values: zero width
    return diff - half, diff + half


def welch_ci(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> DiffCI:
    """Welch t-interval for ``mean(a) - mean(b)`` on independent samples."""
    sa, sb = summarise(a), summarise(b)
    diff = sa.mean - sb.mean
    if sa.n < 2 or sb.n < 2:
        return DiffCI(diff, math.nan, math.nan, math.nan, sa.n, sb.n, "welch", NO_CI_NOTE)
    va, vb = sa.std**2 / sa.n, sb.std**2 / sb.n
    se = math.sqrt(va + vb)
    denom = va**2 / (sa.n - 1) + vb**2 / (sb.n - 1)
    df = (va + vb) ** 2 / denom if denom > 0 else float(sa.n + sb.n - 2)
    low, high = _interval(diff, se, df, level)
    return DiffCI(diff, low, high, df, sa.n, sb.n, "welch")


def paired_ci(a: Mapping[int, float], b: Mapping[int, float], level: float = LEVEL) -> DiffCI:
    """Paired t-interval for ``a - b`` over the seeds both mappings hold (seed -> value)."""
    seeds = sorted(s for s in a if s in b and math.isfinite(a[s]) and math.isfinite(b[s]))
    d = summarise([a[s] - b[s] for s in seeds])
    if d.n < 2:
        note = "no CI: needs >= 2 seeds shared by both variants"
        return DiffCI(d.mean, math.nan, math.nan, math.nan, d.n, d.n, "paired", note)
    low, high = _interval(d.mean, d.std / math.sqrt(d.n), d.n - 1, level)
    return DiffCI(d.mean, low, high, float(d.n - 1), d.n, d.n, "paired")


def verdict_for(ci: DiffCI, lo: float, hi: float) -> str:
    """Compare a difference's CI with the claimed open region ``(lo, hi)`` of its true value.

    holds: the CI lies inside the region; does not hold: the CI lies entirely outside it
    (wholly below ``lo`` or wholly above ``hi``); inconclusive: it straddles a bound, or there
    is no CI (fewer than 2 seeds on a side).
    """
    if not ci.has_ci:
        return "inconclusive"
    if lo < ci.low and ci.high < hi:
        return "holds"
    if ci.high < lo or ci.low > hi:
        return "does not hold"
    return "inconclusive"
