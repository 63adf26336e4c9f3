"""What a number of seeds can resolve: the half-width of a comparison's confidence interval.

``spread_std`` is the seed-to-seed standard deviation that enters the interval:
- paired (same seeds for both variants): the sample std of the per-seed differences
  ``a_s - b_s``; half-width = t_{(1+level)/2, n-1} * sd / sqrt(n);
- unpaired (Welch): the sample std of one variant's results over seeds, taken equal for
  both variants with n seeds each; then Welch's df is exactly 2(n - 1) and
  half-width = t_{(1+level)/2, 2(n-1)} * sd * sqrt(2 / n).
A difference is resolved (its CI excludes 0) when it exceeds the half-width; the paper's
Table 2/3 gaps go down to 0.6 points (``PAPER_MARGIN``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .stats import LEVEL, _complete, t_quantile

PAPER_MARGIN = 0.6  # top-1 points: the smallest gap the paper's ablation tables rely on
MAX_SEEDS = 1000  # seeds_needed gives up beyond this (reported as None)


def min_resolvable_difference(
    spread_std: float, n_seeds: int, paired: bool, level: float = LEVEL
) -> float:
    """Half-width of the CI a comparison with ``n_seeds`` seeds (per variant) would have."""
    if n_seeds < 2 or not math.isfinite(spread_std):
        return math.nan
    if paired:
        return t_quantile(n_seeds - 1, level) * spread_std / math.sqrt(n_seeds)
    return t_quantile(2 * (n_seeds - 1), level) * spread_std * math.sqrt(2 / n_seeds)


def seeds_needed(
    spread_std: float, margin: float = PAPER_MARGIN, paired: bool = True, level: float = LEVEL
) -> int | None:
    """Smallest n >= 2 whose half-width is <= ``margin``; None when unknown or > MAX_SEEDS."""
    if not math.isfinite(spread_std) or margin <= 0:
        return None
    for n in range(2, MAX_SEEDS + 1):
        if min_resolvable_difference(spread_std, n, paired, level) <= margin:
            return n
    return None


@dataclass(frozen=True)
class Resolution:
    """What the seeds of one comparison (variant vs reference) can and could resolve."""

    paired: bool  # same complete seeds for both: the paired interval applies
    n_seeds: int  # seeds per variant (paired: shared seeds; Welch: the smaller count)
    spread_std: float  # sd of per-seed differences (paired) or pooled per-variant sd
    min_difference: float  # half-width of the CI with these seeds (NaN with < 2 seeds)
    seeds_for_margin: int | None  # seeds that would resolve ``margin`` at this spread
    margin: float  # the gap asked about (default: the paper's 0.6 points)


def resolution(
    variant: Mapping[int, float],
    reference: Mapping[int, float],
    margin: float = PAPER_MARGIN,
    level: float = LEVEL,
) -> Resolution:
    """Resolution of ``variant`` vs ``reference`` (seed -> top-1), as diff_to_reference pairs."""
    a, b = _complete(variant), _complete(reference)
    paired = len(a) >= 2 and set(a) == set(b)
    if paired:
        n = len(a)
        spread = float(np.std([a[s] - b[s] for s in sorted(a)], ddof=1))
    else:
        n = min(len(a), len(b))
        sds = [np.std(list(x.values()), ddof=1) if len(x) >= 2 else math.nan for x in (a, b)]
        spread = float(math.sqrt((sds[0] ** 2 + sds[1] ** 2) / 2))  # equal-n pooled sd
    return Resolution(
        paired,
        n,
        spread,
        min_resolvable_difference(spread, n, paired, level),
        seeds_needed(spread, margin, paired, level),
        margin,
    )
