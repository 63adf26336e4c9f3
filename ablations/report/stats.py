"""Seed statistics: mean ± sample std, and 95% confidence intervals of differences.

Method used for a comparison with the reference (``diff_to_reference``):

- **Paired t-interval** when both variants have the same complete seeds (>= 2). Seeds are
  paired: a seed fixes the data order (the loader's generator is reseeded from (seed,
  epoch)) and the augmentation / Mixup / CutMix stream (the global RNGs are reseeded from
  (seed, epoch, step) before every step), whatever the model; so seed-to-seed noise from
  the data is shared by both variants and cancels in the per-seed differences::

      d_s = a_s - b_s for each seed s;   CI = mean(d) ± t_{0.975, n-1} * sd(d) / sqrt(n)

- **Welch's t-interval** otherwise (different or partial seed sets: a running sweep), on
  the complete seeds of each variant, with no equal-variance assumption::

      se = sqrt(s_a^2 / n_a + s_b^2 / n_b)                  (s: sample std, ddof=1)
      df = se^4 / ((s_a^2/n_a)^2 / (n_a-1) + (s_b^2/n_b)^2 / (n_b-1))   (Welch-Satterthwaite)
      CI = mean(a) - mean(b) ± t_{0.975, df} * se

**Evaluation-noise floor** (``noise.py``): the variance that enters either interval is
never below the validation set's sampling noise (paired: from the discordant counts, as in
McNemar's test; Welch: binomial per side), so equal per-seed differences do not give a
zero-width interval; ``DiffCI.floored`` says where the floor decided the width.

The result says which (``DiffCI.method``: "paired" or "welch"). The initial weights still
differ between architectures, so pairing removes the data noise, not the init noise.
With fewer than 2 usable seeds the difference is reported with no interval (a sample
variance needs two values). What a given number of seeds can resolve: ``power.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .noise import Noise

LEVEL = 0.95
NO_CI_NOTE = "no CI: needs >= 2 complete seeds in both variants"
MIN_CLAIM_SEEDS = 3  # fewer complete seeds on a side: no claim holds or fails
INCONCLUSIVE_N = f"inconclusive (n < {MIN_CLAIM_SEEDS})"


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
    floor_sd: float = math.nan  # sd the evaluation noise implies (NaN: not recorded)
    floored: bool = False  # the floor, not the seeds' spread, set the interval's width

    @property
    def has_ci(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def enough_seeds(self) -> bool:
        """At least MIN_CLAIM_SEEDS complete seeds on each side: a claim may be decided."""
        return min(self.n_a, self.n_b) >= MIN_CLAIM_SEEDS


def floored_var(sample_var: float, floor: float) -> tuple[float, bool]:
    """``max(sample_var, floor)`` and whether the floor was the larger (NaN floor: none)."""
    if math.isfinite(floor) and floor > sample_var:
        return floor, True
    return sample_var, False


def t_quantile(df: float, level: float = LEVEL) -> float:
    """Two-sided Student-t critical value, e.g. 12.706 for df=1 at 95%."""
    return float(stats.t.ppf(0.5 + level / 2, df))


def _interval(diff: float, se: float, df: float, level: float) -> tuple[float, float]:
    half = t_quantile(df, level) * se if se > 0 else 0.0  # identical values: zero width
    return diff - half, diff + half


def welch_ci(
    a: Sequence[float],
    b: Sequence[float],
    level: float = LEVEL,
    floor_a: float = math.nan,
    floor_b: float = math.nan,
) -> DiffCI:
    """Welch t-interval for ``mean(a) - mean(b)`` on independent samples; each side's
    variance is at least its evaluation-noise floor (``floor_a``, ``floor_b``, pp^2)."""
    sa, sb = summarise(a), summarise(b)
    diff = sa.mean - sb.mean
    if sa.n < 2 or sb.n < 2:
        return DiffCI(diff, math.nan, math.nan, math.nan, sa.n, sb.n, "welch", NO_CI_NOTE)
    (var_a, fa), (var_b, fb) = floored_var(sa.std**2, floor_a), floored_var(sb.std**2, floor_b)
    va, vb = var_a / sa.n, var_b / sb.n
    se = math.sqrt(va + vb)
    denom = va**2 / (sa.n - 1) + vb**2 / (sb.n - 1)
    df = (va + vb) ** 2 / denom if denom > 0 else float(sa.n + sb.n - 2)
    low, high = _interval(diff, se, df, level)
    floor_sd = math.sqrt((floor_a + floor_b) / 2) if math.isfinite(floor_a + floor_b) else math.nan
    return DiffCI(diff, low, high, df, sa.n, sb.n, "welch", "", floor_sd, fa or fb)


def paired_ci(
    a: Mapping[int, float],
    b: Mapping[int, float],
    level: float = LEVEL,
    noise: Noise | None = None,
) -> DiffCI:
    """Paired t-interval for ``a - b`` over the seeds both mappings hold (seed -> value);
    the per-seed differences' variance is at least ``noise``'s paired floor."""
    seeds = sorted(s for s in a if s in b and math.isfinite(a[s]) and math.isfinite(b[s]))
    d = summarise([a[s] - b[s] for s in seeds])
    if d.n < 2:
        note = "no CI: needs >= 2 seeds shared by both variants"
        return DiffCI(d.mean, math.nan, math.nan, math.nan, d.n, d.n, "paired", note)
    floor = noise.paired_var(seeds) if noise else math.nan
    var, floored = floored_var(d.std**2, floor)
    low, high = _interval(d.mean, math.sqrt(var / d.n), d.n - 1, level)
    floor_sd = math.sqrt(floor) if math.isfinite(floor) else math.nan
    return DiffCI(d.mean, low, high, float(d.n - 1), d.n, d.n, "paired", "", floor_sd, floored)


def is_paired(a: Mapping[int, float], b: Mapping[int, float]) -> bool:
    """The paired interval applies: the same >= 2 complete seeds on both sides."""
    return len(a) >= 2 and set(a) == set(b)


def diff_to_reference(
    variant: Mapping[int, float],
    reference: Mapping[int, float],
    level: float = LEVEL,
    noise: Noise | None = None,
) -> DiffCI:
    """``variant - reference`` (seed -> top-1): paired on identical complete seeds, else Welch;
    ``noise``: the evaluation-noise floor (``noise.noise(variant, reference, ...)``)."""
    a, b = _complete(variant), _complete(reference)
    if is_paired(a, b):
        return paired_ci(a, b, level, noise)
    fa = noise.side_var("a", sorted(a)) if noise else math.nan
    fb = noise.side_var("b", sorted(b)) if noise else math.nan
    return welch_ci(list(a.values()), list(b.values()), level, fa, fb)


def _complete(by_seed: Mapping[int, float]) -> dict[int, float]:
    return {s: float(v) for s, v in by_seed.items() if v is not None and math.isfinite(v)}


def verdict_for(ci: DiffCI, lo: float, hi: float) -> str:
    """Compare a difference's CI with the claimed open region ``(lo, hi)`` of its true value.

    holds: the CI lies inside the region; does not hold: the CI lies entirely outside it
    (wholly below ``lo`` or wholly above ``hi``); inconclusive: it straddles a bound, or there
    is no CI (fewer than 2 seeds on a side); ``INCONCLUSIVE_N`` with fewer than
    MIN_CLAIM_SEEDS seeds on a side, whatever the interval.
    """
    if not ci.has_ci:
        return "inconclusive"
    if not ci.enough_seeds:
        return INCONCLUSIVE_N
    if lo < ci.low and ci.high < hi:
        return "holds"
    if ci.high < lo or ci.low > hi:
        return "does not hold"
    return "inconclusive"


def region_p(ci: DiffCI, lo: float, hi: float, level: float = LEVEL) -> tuple[float, float]:
    """(p_inside, p_outside) for the claimed open region ``(lo, hi)`` of the true difference:
    the smallest alpha at which the (1 - alpha) t-interval of ``ci`` lies inside the region,
    and the smallest at which it lies entirely outside it (1.0: never; NaN: no CI).
    At alpha = 1 - level this is ``verdict_for``: holds iff p_inside < alpha."""
    if not ci.has_ci:
        return math.nan, math.nan
    se = (ci.high - ci.low) / 2 / t_quantile(ci.df, level)
    d = ci.diff

    def p(margin: float) -> float:  # two-sided p of "the interval clears this margin"
        if se == 0:
            return 0.0 if margin > 0 else 1.0
        return min(1.0, float(2 * stats.t.sf(margin / se, ci.df))) if margin > 0 else 1.0

    inside = p(min(d - lo, hi - d))
    outside = min(p(lo - d), p(d - hi))
    return inside, outside


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN entries are not tested and stay NaN):
    the i-th smallest of m is multiplied by m - i (i from 0), then made non-decreasing."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if math.isfinite(p))
    m, out, running = len(tested), [math.nan] * len(pvalues), 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
