"""The report's statistics checked on real training noise: an A/A test and a planted effect.

Input: a ``calibrate`` folder whose arms are ``reference``, ``aa`` (the reference with other
initial weights, the same data draws per seed) and ``planted`` (the reference made worse in
a known way); see ablations/sweep/calibration.py. Everything below uses the report's own
functions (``stats.diff_to_reference`` with its evaluation-noise floor, ``stats.region_p``,
``stats.holm``, ``power.power``), never a second implementation.

- **Pairing**, from the run records: every seed's arms must share their data digest (same
  sample order, augmentation and step seeds) and ``aa`` must have other initial weights.
- **A/A coverage**: over random subsets of n of the N paired seeds, how often the paired 95%
  CI of ``aa - reference`` contains 0 (nominal 95%), and Welch's CI of ``aa`` on n seeds
  against ``reference`` on n *other* seeds (the unpaired case of a running sweep).
- **A/A claims**: how often the report would claim a difference (the CI excludes 0 with at
  least ``MIN_CLAIM_SEEDS`` seeds; alone, and Holm-corrected over the family {aa, planted}
  as the report corrects the comparisons with one reference); nominal at most 5%.
- **Planted**: its effect and spread from all N seeds; over random n-subsets the observed
  detection rate (the paired CI excludes 0, n >= MIN_CLAIM_SEEDS) against ``power.power``
  for that effect, the seeds' own sd, the floor and n: the model behind "resolvable" and
  "seeds needed" (``unfloored``: the noncentral t at the floored pooled sd, the model
  before this calibration showed it overstated the power where the floor binds).

Intervals of an observed rate. The subsets overlap, so their outcomes are not independent:
the rate over many random subsets is a U-statistic, whose variance is at most that of the
mean over k = floor(N / m) disjoint subsets (Hoeffding 1963; m = the seeds one subset uses,
n paired, 2n Welch). Its 95% Clopper-Pearson interval is therefore taken with k trials
(x = rate * k): conservative, and honest about how little 20 seeds can show. Observed and
predicted *agree* when the prediction lies inside that interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats as sps

from ablations.report.findings import ALPHA
from ablations.report.load import Experiment
from ablations.report.noise import Eval, noise
from ablations.report.power import min_resolvable_difference, power, seeds_needed
from ablations.report.stats import (
    LEVEL,
    MIN_CLAIM_SEEDS,
    DiffCI,
    diff_to_reference,
    holm,
    region_p,
    summarise,
)

REFERENCE, AA, PLANTED = "reference", "aa", "planted"
SIZES = (3, 5)  # seeds per subset: what a sweep typically runs
DRAWS = 2000  # random subsets per size (all of them when there are fewer)


@dataclass(frozen=True)
class Rate:
    """An observed rate over subsets, with its conservative binomial interval."""

    kind: str  # coverage | claim | detection
    method: str  # paired | welch | alone | holm
    n: int  # seeds per arm in a subset
    rate: float
    k: int  # independent subsets its interval counts (Hoeffding: floor(N / seeds used))
    low: float
    high: float
    draws: int  # subsets evaluated
    expected: float  # nominal (coverage 0.95, claims 0.05) or predicted power
    expected_is: str  # "nominal" | "predicted"
    unfloored: float = math.nan  # detection: the noncentral t at the floored pooled spread,
    # the model before the calibration (power.py docstring)

    @property
    def agrees(self) -> bool:
        """The expectation lies inside the interval (claims: at or below its upper end)."""
        if self.kind == "claim":
            return self.low <= self.expected
        return self.low <= self.expected <= self.high


@dataclass
class Calibration:
    """What ``analyse`` measured (``calibration.json`` is ``to_dict``)."""

    seeds: list[int]
    pairing: dict[str, Any]
    aa: dict[str, Any]
    planted: dict[str, Any]
    spread: dict[str, Any]
    rates: list[Rate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rates"] = [asdict(r) | {"agrees": r.agrees} for r in self.rates]
        return out


def clopper_pearson(rate: float, k: int, level: float = LEVEL) -> tuple[float, float]:
    """Exact binomial interval of a rate seen as ``rate * k`` successes in ``k`` trials."""
    if k < 1 or not math.isfinite(rate):
        return math.nan, math.nan
    x, a = rate * k, (1 - level) / 2
    low = 0.0 if x <= 0 else float(sps.beta.ppf(a, x, k - x + 1))
    high = 1.0 if x >= k else float(sps.beta.ppf(1 - a, x + 1, k - x))
    return low, high


def _subsets(seeds: list[int], m: int, draws: int, rng: np.random.Generator) -> list[list[int]]:
    """All m-subsets of ``seeds`` when there are at most ``draws``, else ``draws`` random
    ones (in random order: a Welch split takes the first half and the second)."""
    if math.comb(len(seeds), m) <= draws:
        return [list(c) for c in combinations(seeds, m)]
    return [list(rng.permutation(seeds)[:m]) for _ in range(draws)]


def _pick(values: Mapping[int, Any], seeds: list[int]) -> dict[int, Any]:
    return {s: values[s] for s in seeds}


@dataclass
class _Arms:
    top1: dict[str, dict[int, float]]
    evals: dict[str, dict[int, Eval]]

    def floor(self, a: str, seeds: list[int]) -> float:
        """The mean paired floor (pp^2) of ``a - reference`` over ``seeds``."""
        ta, tb = _pick(self.top1[a], seeds), _pick(self.top1[REFERENCE], seeds)
        ea, eb = _pick(self.evals[a], seeds), _pick(self.evals[REFERENCE], seeds)
        return noise(ta, tb, ea, eb).paired_var(seeds)

    def ci(self, a: str, b: str, seeds_a: list[int], seeds_b: list[int]) -> DiffCI:
        """The report's interval of ``a - b`` on these seeds (paired when they are equal)."""
        ta, tb = _pick(self.top1[a], seeds_a), _pick(self.top1[b], seeds_b)
        nz = noise(ta, tb, _pick(self.evals[a], seeds_a), _pick(self.evals[b], seeds_b))
        return diff_to_reference(ta, tb, noise=nz)


def _excludes0(ci: DiffCI) -> bool:
    return ci.has_ci and (ci.low > 0 or ci.high < 0)


def _p(ci: DiffCI) -> float:
    """The p of the report's plain comparison (region Δ > 0, either verdict); NaN: no claim."""
    if not ci.has_ci or not ci.enough_seeds:
        return math.nan
    return min(region_p(ci, 0.0, math.inf))


def _rate(kind, method, n, hits, used, total, expected, expected_is) -> Rate:
    rate = float(np.mean(hits)) if hits else math.nan
    k = total // used
    return Rate(kind, method, n, rate, k, *clopper_pearson(rate, k), len(hits), expected,
                expected_is)  # fmt: skip


def _paired_rates(arms: _Arms, seeds: list[int], n: int, rng, planted: dict) -> list[Rate]:
    cover, alone, with_holm, detect = [], [], [], []
    has_planted = all(s in arms.top1[PLANTED] for s in seeds)
    for sub in _subsets(seeds, n, DRAWS, rng):
        aa = arms.ci(AA, REFERENCE, sub, sub)
        cover.append(not _excludes0(aa))
        p_aa = _p(aa)
        alone.append(math.isfinite(p_aa) and p_aa < ALPHA)
        if has_planted:
            pl = arms.ci(PLANTED, REFERENCE, sub, sub)
            detect.append(_excludes0(pl) and pl.enough_seeds)
            adjusted = holm([p_aa, _p(pl)])
            with_holm.append(math.isfinite(adjusted[0]) and adjusted[0] < ALPHA)
    total = len(seeds)
    out = [_rate("coverage", "paired", n, cover, n, total, LEVEL, "nominal"),
           _rate("claim", "alone", n, alone, n, total, ALPHA, "nominal")]  # fmt: skip
    if has_planted:
        out.append(_rate("claim", "holm", n, with_holm, n, total, ALPHA, "nominal"))
        effect, own, floor = planted["diff"], planted["sample_sd"], planted["floor_var"]
        predicted = power(effect, own, n, True, floor_var=floor) if n >= MIN_CLAIM_SEEDS else 0.0
        rate = _rate("detection", "paired", n, detect, n, total, predicted, "predicted")
        old = power(effect, planted["spread_sd"], n, True)  # noncentral t, floored pooled sd
        out.append(replace(rate, unfloored=old))
    return out


def _welch_rate(arms: _Arms, seeds: list[int], n: int, rng) -> Rate | None:
    if 2 * n > len(seeds):
        return None
    hits = []
    for sub in _subsets(seeds, 2 * n, DRAWS, rng):
        ci = arms.ci(AA, REFERENCE, sub[n:], sub[:n])  # other seeds: Welch, unpaired
        hits.append(not _excludes0(ci))
    return _rate("coverage", "welch", n, hits, 2 * n, len(seeds), LEVEL, "nominal")


def _pairing(exp: Experiment, seeds: list[int]) -> dict[str, Any]:
    """Digests of each seed's arms (run records): data shared, aa's init its own."""
    recs = {r.point: r for r in exp.records if r.state == "COMPLETE"}
    problems, checked = [], 0
    for s in seeds:
        got = {v: recs.get((v, s)) for v in (REFERENCE, AA, PLANTED)}
        ref, aa = got[REFERENCE], got[AA]
        if ref is None or aa is None or not ref.data_digest or not aa.data_digest:
            problems.append(f"s{s}: no data/init digest recorded")
            continue
        checked += 1
        for v, r in got.items():
            if r is not None and r.data_digest != ref.data_digest:
                problems.append(f"s{s}: {v} saw other data draws than reference (not paired)")
        if aa.init_digest == ref.init_digest:
            problems.append(f"s{s}: aa has the reference's initial weights (init_seed ignored)")
        pl = got[PLANTED]
        if pl is not None and pl.init_digest != ref.init_digest:
            problems.append(f"s{s}: planted has other initial weights than reference")
    return {"checked": checked, "ok": not problems and checked == len(seeds),
            "problems": problems}  # fmt: skip


def _ci_dict(ci: DiffCI, values: list[float]) -> dict[str, Any]:
    sd = summarise(values).std
    se = (ci.high - ci.low) / 2 / sps.t.ppf(0.5 + LEVEL / 2, ci.df) if ci.has_ci else math.nan
    return {"diff": ci.diff, "low": ci.low, "high": ci.high, "df": ci.df, "n": ci.n_a,
            "method": ci.method, "floored": ci.floored, "sample_sd": sd,
            "sd_used": se * math.sqrt(ci.n_a) if ci.has_ci else math.nan,
            "half_width": (ci.high - ci.low) / 2 if ci.has_ci else math.nan}  # fmt: skip


def analyse(exp: Experiment, draws_seed: int = 0) -> Calibration:
    """The calibration of ``exp`` (a loaded calibrate folder): see the module docstring."""
    top1 = {v: exp.top1_by_seed(v) for v in (REFERENCE, AA, PLANTED)}
    arms = _Arms(top1, {v: exp.evals(v) for v in top1})
    seeds = sorted(set(top1[REFERENCE]) & set(top1[AA]))
    if top1[PLANTED]:  # a calibration still training: the seeds every arm finished
        seeds = [s for s in seeds if s in top1[PLANTED]]
    pl_seeds = [s for s in seeds if s in top1[PLANTED]]
    full = lambda v, ss: arms.ci(v, REFERENCE, ss, ss)
    aa_ci, pl_ci = full(AA, seeds), full(PLANTED, pl_seeds)
    aa_d = [top1[AA][s] - top1[REFERENCE][s] for s in seeds]
    pl_d = [top1[PLANTED][s] - top1[REFERENCE][s] for s in pl_seeds]
    aa_sd = aa_ci.floor_sd if aa_ci.floored else summarise(aa_d).std
    pl_sd = pl_ci.floor_sd if pl_ci.floored else summarise(pl_d).std
    ref_sd = summarise(list(top1[REFERENCE].values())).std
    own, floor = summarise(aa_d).std, arms.floor(AA, seeds) if seeds else math.nan
    spread = {"paired_sd": aa_sd, "own_sd": own, "floor_var": floor, "unpaired_sd": ref_sd,
              "n_seeds": len(seeds),
              "source": "sd of the A/A per-seed differences aa - reference (paired; own_sd "
                        "and the evaluation-noise floor_var apart); sd of the reference over "
                        "seeds (unpaired)",
              "resolvable": {n: min_resolvable_difference(own, n, True, floor_var=floor)
                             for n in sorted({3, 5, len(seeds)}) if n >= 2},
              "seeds_for_0.6": seeds_needed(own, floor_var=floor)}  # fmt: skip
    cal = Calibration(
        seeds, _pairing(exp, seeds),
        {**_ci_dict(aa_ci, aa_d), "per_seed": dict(zip(seeds, aa_d, strict=True))},
        {**_ci_dict(pl_ci, pl_d), "spread_sd": pl_sd, "seeds": pl_seeds,
         "floor_var": arms.floor(PLANTED, pl_seeds) if pl_seeds else math.nan,
         "per_seed": dict(zip(pl_seeds, pl_d, strict=True))},
        spread,
    )  # fmt: skip
    rng = np.random.default_rng(draws_seed)
    for n in SIZES:
        if n > len(seeds):
            cal.notes.append(f"n = {n}: not measured ({len(seeds)} paired seeds)")
            continue
        cal.rates += _paired_rates(arms, seeds, n, rng, cal.planted)
        welch = _welch_rate(arms, seeds, n, rng)
        cal.rates += [welch] if welch else []
    _disagreements(cal)
    return cal


def _disagreements(cal: Calibration) -> None:
    for r in cal.rates:
        if not r.agrees and math.isfinite(r.rate):
            what = {"coverage": f"{r.method} CI coverage of 0", "claim": f"A/A claims ({r.method})",
                    "detection": "planted detection rate"}[r.kind]  # fmt: skip
            cal.notes.append(f"n = {r.n}: {what} {r.rate:.1%} (95% interval {r.low:.1%}-"
                             f"{r.high:.1%}) disagrees with the {r.expected_is} "
                             f"{r.expected:.1%}")  # fmt: skip
    if cal.pairing["problems"]:
        cal.notes.append("pairing broken: " + "; ".join(cal.pairing["problems"][:5]))
