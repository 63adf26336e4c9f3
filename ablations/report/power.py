"""What a number of seeds can resolve: the smallest true top-1 difference that a comparison
detects (its two-sided 95% t-interval excludes 0) with probability ``POWER`` = 80%.

``spread_std`` is the seed-to-seed standard deviation that enters the interval:
- paired (same seeds for both variants): the sample std of the per-seed differences
  ``a_s - b_s``; standard error se = sd / sqrt(n), df = n - 1;
- unpaired (Welch): the sample std of one variant's results over seeds, taken equal for
  both variants with n seeds each; then se = sd * sqrt(2 / n) and Welch's df is 2(n - 1).
Either spread is at least the evaluation-noise floor (``noise.py``; the paired floor of the
per-seed differences, or the mean of the two sides' binomial floors), as in ``stats.py``.
With a true difference δ the t statistic follows a noncentral t with df and noncentrality
δ / se, so the power is ``P(|T| > t_{(1+level)/2, df})`` (scipy.stats.nct); the resolvable
difference solves power = 80% for δ, and ``seeds_needed`` is the smallest n whose power for
a given margin (the paper's smallest gap, 0.6 points: ``PAPER_MARGIN``) reaches 80%.
The CI half-width (``half_width``) is resolved with only 50-70% power (about 50% with many
seeds), which is why it is not what "resolvable" means here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from .noise import Noise
from .stats import LEVEL, MIN_CLAIM_SEEDS, _complete, floored_var, is_paired, t_quantile

PAPER_MARGIN = 0.6  # top-1 points: the smallest gap the paper's ablation tables rely on
POWER = 0.8  # the probability of resolving a difference that "resolvable" refers to
MAX_SEEDS = 1000  # seeds_needed gives up beyond this (reported as None)


def _df_se(spread_std: float, n_seeds: int, paired: bool) -> tuple[float, float]:
    if paired:
        return n_seeds - 1.0, spread_std / math.sqrt(n_seeds)
    return 2.0 * (n_seeds - 1), spread_std * math.sqrt(2.0 / n_seeds)


def half_width(spread_std: float, n_seeds: int, paired: bool, level: float = LEVEL) -> float:
    """Half-width of the CI a comparison with ``n_seeds`` seeds (per variant) would have."""
    if n_seeds < 2 or not math.isfinite(spread_std):
        return math.nan
    df, se = _df_se(spread_std, n_seeds, paired)
    return t_quantile(df, level) * se


def power(
    delta: float, spread_std: float, n_seeds: int, paired: bool, level: float = LEVEL
) -> float:
    """Probability that the two-sided t-interval at ``level`` excludes 0 for a true
    difference ``delta`` (noncentral t); NaN with fewer than 2 seeds."""
    if n_seeds < 2 or not math.isfinite(spread_std):
        return math.nan
    df, se = _df_se(spread_std, n_seeds, paired)
    if se == 0:
        return 1.0 if delta != 0 else 1.0 - level
    crit, nc = t_quantile(df, level), abs(delta) / se
    # P(T < -crit | nc) as P(T > crit | -nc): scipy's nct.cdf gives NaN far in that tail
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def min_resolvable_difference(
    spread_std: float, n_seeds: int, paired: bool, level: float = LEVEL, target: float = POWER
) -> float:
    """The true difference detected with probability ``target`` by ``n_seeds`` seeds."""
    if n_seeds < 2 or not math.isfinite(spread_std):
        return math.nan
    df, se = _df_se(spread_std, n_seeds, paired)
    if se == 0:
        return 0.0
    f = lambda nc: power(nc * se, spread_std, n_seeds, paired, level) - target
    high = 2.0 * t_quantile(df, level) + 4.0
    while f(high) < 0:  # df = 1 needs a large noncentrality
        high *= 2.0
    return float(optimize.brentq(f, 0.0, high, xtol=1e-10)) * se


def seeds_needed(
    spread_std: float,
    margin: float = PAPER_MARGIN,
    paired: bool = True,
    level: float = LEVEL,
    target: float = POWER,
) -> int | None:
    """Smallest n >= MIN_CLAIM_SEEDS whose power for ``margin`` is >= ``target``; None when
    unknown or more than MAX_SEEDS (power grows with n, so a bisection finds it). Never 2:
    however small the spread, the report decides no claim on fewer than 3 seeds."""
    if not math.isfinite(spread_std) or margin <= 0:
        return None
    enough = lambda n: power(margin, spread_std, n, paired, level) >= target
    if enough(MIN_CLAIM_SEEDS):
        return MIN_CLAIM_SEEDS
    if not enough(MAX_SEEDS):
        return None
    low, high = MIN_CLAIM_SEEDS, MAX_SEEDS  # enough(low) is False, enough(high) is True
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


@dataclass(frozen=True)
class Resolution:
    """What the seeds of one comparison (variant vs reference) can and could resolve."""

    paired: bool  # same complete seeds for both: the paired interval applies
    n_seeds: int  # seeds per variant (paired: shared seeds; Welch: the smaller count)
    spread_std: float  # sd of per-seed differences (paired) or pooled per-variant sd
    min_difference: float  # resolved with 80% power by these seeds (NaN with < 2 seeds)
    seeds_for_margin: int | None  # seeds that would resolve ``margin`` with 80% power
    margin: float  # the gap asked about (default: the paper's 0.6 points)
    half_width: float = math.nan  # the CI half-width at this spread (50-70% power)
    floored: bool = False  # the evaluation-noise floor, not the seeds, set the spread


def resolution(
    variant: Mapping[int, float],
    reference: Mapping[int, float],
    margin: float = PAPER_MARGIN,
    level: float = LEVEL,
    noise: Noise | None = None,
) -> Resolution:
    """Resolution of ``variant`` vs ``reference`` (seed -> top-1), as diff_to_reference pairs
    (``noise``: the evaluation-noise floor of the spread)."""
    a, b = _complete(variant), _complete(reference)
    paired = is_paired(a, b)
    if paired:
        n = len(a)
        var = float(np.var([a[s] - b[s] for s in sorted(a)], ddof=1))
        var, floored = floored_var(var, noise.paired_var(sorted(a)) if noise else math.nan)
    else:
        n = min(len(a), len(b))
        vs = [np.var(list(x.values()), ddof=1) if len(x) >= 2 else math.nan for x in (a, b)]
        floors = [noise.side_var(k, sorted(x)) if noise else math.nan
                  for k, x in (("a", a), ("b", b))]  # fmt: skip
        both = [floored_var(float(v), f) for v, f in zip(vs, floors, strict=True)]
        var, floored = (both[0][0] + both[1][0]) / 2, both[0][1] or both[1][1]  # equal-n pooled
    spread = math.sqrt(var) if math.isfinite(var) else math.nan
    return Resolution(
        paired,
        n,
        spread,
        min_resolvable_difference(spread, n, paired, level),
        seeds_needed(spread, margin, paired, level),
        margin,
        half_width(spread, n, paired, level),
        floored,
    )
