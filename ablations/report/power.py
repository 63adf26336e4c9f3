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

**The floor in the power (paired).** The interval's variance is ``max(s^2, floor)`` of the
seeds it is formed on, not the spread of many seeds: where the floor is near the seeds' own
variance, a 3- or 5-seed interval is floored far more often than the pooled spread says,
and the noncentral t (which assumes the variance s^2) overstates the power. Measured by
``vil-ablate calibrate`` (smoke protocol, 20 seeds, 64 validation images: planted effect
detected 0.0% / 0.2% of 3- / 5-seed subsets, the noncentral t at the floored pooled spread
said 8.1% / 13.2%). So with a floor the paired power is computed as the rule is applied:
d̄ ~ N(δ, σ²/n) and s² ~ σ² χ²_{n-1}/(n-1) independently (normal per-seed differences),
power = E_{s²}[P(|d̄| > t_{n-1} sqrt(max(s², floor) / n))] (one integral over χ²; with no
floor it is the noncentral t again). ``σ`` is then the seeds' own sd, the floor separate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize, stats

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
    delta: float,
    spread_std: float,
    n_seeds: int,
    paired: bool,
    level: float = LEVEL,
    floor_var: float = math.nan,
) -> float:
    """Probability that the two-sided t-interval at ``level`` excludes 0 for a true
    difference ``delta`` (noncentral t); NaN with fewer than 2 seeds. ``floor_var``
    (paired, pp^2): the interval's variance is max(s^2, floor_var), ``spread_std`` the
    seeds' own sd (see the module docstring)."""
    if n_seeds < 2 or not math.isfinite(spread_std):
        return math.nan
    if paired and math.isfinite(floor_var) and floor_var > 0:
        return _floored_power(delta, spread_std, n_seeds, level, floor_var)
    df, se = _df_se(spread_std, n_seeds, paired)
    if se == 0:
        return 1.0 if delta != 0 else 1.0 - level
    crit, nc = t_quantile(df, level), abs(delta) / se
    # P(T < -crit | nc) as P(T > crit | -nc): scipy's nct.cdf gives NaN far in that tail
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def _floored_power(delta: float, sd: float, n: int, level: float, floor: float) -> float:
    """Paired power of the floored t rule: an integral over the chi^2 of s^2."""
    df, crit = n - 1, t_quantile(n - 1, level)
    se = sd / math.sqrt(n)

    def reject(s2: float) -> float:  # P(|d̄| > half) for one value of s^2
        half = crit * math.sqrt(max(s2, floor) / n)
        if se == 0:
            return 1.0 if abs(delta) > half else 0.0
        return float(stats.norm.sf((half - delta) / se) + stats.norm.cdf((-half - delta) / se))

    if sd == 0:
        return reject(0.0)
    q_floor = floor * df / sd**2  # below it, s^2 < floor: the floor sets the width
    below = reject(0.0) * float(stats.chi2.cdf(q_floor, df))
    above, _ = integrate.quad(lambda q: reject(sd**2 * q / df) * stats.chi2.pdf(q, df),
                              q_floor, math.inf, limit=200)  # fmt: skip
    return min(1.0, below + above)


def min_resolvable_difference(
    spread_std: float,
    n_seeds: int,
    paired: bool,
    level: float = LEVEL,
    target: float = POWER,
    floor_var: float = math.nan,
) -> float:
    """The true difference detected with probability ``target`` by ``n_seeds`` seeds."""
    if n_seeds < 2 or not math.isfinite(spread_std):
        return math.nan
    df, se = _df_se(spread_std, n_seeds, paired)
    floored = paired and math.isfinite(floor_var) and floor_var > 0
    se = max(se, math.sqrt(floor_var / n_seeds)) if floored else se
    if se == 0:
        return 0.0
    f = lambda nc: power(nc * se, spread_std, n_seeds, paired, level, floor_var) - target
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
    floor_var: float = math.nan,
) -> int | None:
    """Smallest n >= MIN_CLAIM_SEEDS whose power for ``margin`` is >= ``target``; None when
    unknown or more than MAX_SEEDS (power grows with n, so a bisection finds it). Never 2:
    however small the spread, the report decides no claim on fewer than 3 seeds."""
    if not math.isfinite(spread_std) or margin <= 0:
        return None
    enough = lambda n: power(margin, spread_std, n, paired, level, floor_var) >= target
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
    own, floor = math.nan, math.nan  # paired: the seeds' own sd and the floor, apart
    if paired:
        n = len(a)
        var = float(np.var([a[s] - b[s] for s in sorted(a)], ddof=1))
        own, floor = math.sqrt(var), noise.paired_var(sorted(a)) if noise else math.nan
        var, floored = floored_var(var, floor)
    else:
        n = min(len(a), len(b))
        vs = [np.var(list(x.values()), ddof=1) if len(x) >= 2 else math.nan for x in (a, b)]
        floors = [noise.side_var(k, sorted(x)) if noise else math.nan
                  for k, x in (("a", a), ("b", b))]  # fmt: skip
        both = [floored_var(float(v), f) for v, f in zip(vs, floors, strict=True)]
        var, floored = (both[0][0] + both[1][0]) / 2, both[0][1] or both[1][1]  # equal-n pooled
    spread = math.sqrt(var) if math.isfinite(var) else math.nan
    sd = own if paired else spread  # the floor enters the paired power on its own
    return Resolution(
        paired,
        n,
        spread,
        min_resolvable_difference(sd, n, paired, level, floor_var=floor),
        seeds_needed(sd, margin, paired, level, floor_var=floor),
        margin,
        half_width(spread, n, paired, level),
        floored,
    )
