"""The paper's claims judged on constructed sweeps: one where they hold, one where they fail."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from ablations.report.findings import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_TESTED,
    findings,
    findings_markdown,
)
from ablations.report.load import Experiment, _complete_grid, _normalise
from ablations.report.stats import diff_to_reference, holm, region_p

UNI_COST = (5.889e6, 1.1e9)
COST = {"bi": (6.286e6, 2.0e9), "bi_shared": (5.889e6, 2.0e9)}


def sweep(top1: dict[str, list[float]], axis: str = "traversal", cost=None, ref=None) -> Experiment:
    """An in-memory experiment with one COMPLETE run per listed top-1 value."""
    cost = {**COST, **(cost or {})}
    rows = []
    for variant, values in top1.items():
        params, flops = cost.get(variant, UNI_COST)
        for seed, v in enumerate(values):
            rec = {"variant": variant, "seed": seed, "state": "COMPLETE", "top1": v}
            rows.append(rec | {"params": params, "flops": flops})
    seeds = list(range(max(len(v) for v in top1.values())))
    meta = {"experiment": "t", "axis": axis, "variants": list(top1), "seeds": seeds}
    meta["reference"] = ref
    return Experiment(Path("."), meta, _complete_grid(_normalise(pd.DataFrame(rows)), meta))


def verdicts(exp: Experiment) -> list[str]:
    return [f.verdict for f in findings(exp)]


PAPER_LIKE = {
    "uni": [60.0, 61.0, 62.0],
    "bi": [70.9, 71.0, 71.1],
    "bi_shared": [68.4, 68.5, 68.6],
    "alternating": [71.4, 71.5, 71.6],
}


def test_claims_hold_on_paper_like_numbers():
    items = findings(sweep(PAPER_LIKE))
    assert [f.verdict for f in items] == [HOLDS] * 4
    md = findings_markdown(items)
    # Same seeds on both sides: paired; each seed's difference is exactly +0.5, so the
    # interval has zero width (Welch on the same numbers would be [+0.27, +0.73]).
    assert "alternating − bi: holds; Δ top-1 = +0.50 pp, 95% CI [+0.50, +0.50]" in md


def test_claims_do_not_hold_on_contrary_numbers():
    contrary = {
        "uni": [75.0, 75.1, 75.2],  # best instead of worst
        "bi": [70.9, 71.0, 71.1],
        "bi_shared": [72.9, 73.0, 73.1],  # sharing helps
        "alternating": [69.0, 69.1, 69.2],  # 1.9 points below bi
    }
    exp = sweep(contrary, cost={"bi": UNI_COST})  # bi without extra cost
    assert verdicts(exp) == [FAILS] * 4
    bi_claim = findings(exp)[1]
    assert [c.verdict for c in bi_claim.checks] == [FAILS, FAILS]


def test_alternating_within_margin_below_bi_still_matches():
    near = dict(PAPER_LIKE, alternating=[70.6, 70.7, 70.8])  # 0.3 below bi, CI above -0.6
    assert findings(sweep(near))[3].verdict == HOLDS


def test_one_seed_or_overlap_is_inconclusive():
    one = {k: v[:1] for k, v in PAPER_LIKE.items()}
    assert verdicts(sweep(one)) == [INCONCLUSIVE, INCONCLUSIVE, INCONCLUSIVE, INCONCLUSIVE]
    noisy = dict(PAPER_LIKE, bi_shared=[66.0, 71.0, 76.0])
    assert findings(sweep(noisy))[2].verdict == INCONCLUSIVE


def test_claims_about_absent_variants_are_not_tested():
    items = findings(sweep({"uni": [60.0, 61.0, 62.0], "alternating": [70.0, 71.0, 71.5]}))
    assert [f.verdict for f in items] == [HOLDS, NOT_TESTED, NOT_TESTED, NOT_TESTED]
    assert "bi" in items[1].note and not items[1].checks


def test_pooling_claim():
    close = {"avg": [70.0, 70.1, 70.2], "bilateral_avg": [70.2, 70.3, 70.4]}
    assert verdicts(sweep(close, axis="pooling")) == [HOLDS]
    apart = {"avg": [70.0, 70.1, 70.2], "bilateral_concat": [72.0, 72.1, 72.2]}
    assert verdicts(sweep(apart, axis="pooling")) == [FAILS]
    assert verdicts(sweep({"avg": [70.0, 70.1]}, axis="pooling")) == [NOT_TESTED]


def test_holm_adjusts_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): x4 = 0.02, x3 = 0.03, x2 = 0.06, x1 = 0.04 ->
    # made non-decreasing: 0.06; an untested (NaN) entry stays NaN and does not count in m.
    adjusted = holm([0.01, 0.04, 0.03, math.nan, 0.005])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and adjusted[4] == pytest.approx(0.02)
    assert math.isnan(adjusted[3]) and holm([0.2]) == [0.2]


def test_region_p_is_the_level_at_which_the_interval_decides():
    ci = diff_to_reference({0: 70.8, 1: 71.0, 2: 71.6}, {0: 70.0, 1: 70.0, 2: 70.0})
    inside, outside = region_p(ci, 0, math.inf)
    assert inside == pytest.approx(stats.ttest_1samp([0.8, 1.0, 1.6], 0).pvalue) and outside == 1
    # just inside at its own level, just outside a hair beyond it: the CI rule at alpha
    for alpha, holds in ((inside * 1.001, True), (inside * 0.999, False)):
        ci_a = diff_to_reference({0: 70.8, 1: 71.0, 2: 71.6}, {0: 70.0, 1: 70.0, 2: 70.0},
                                 level=1 - alpha)  # fmt: skip
        assert (ci_a.low > 0) is holds


# Per-seed differences 0.8, 1.0, 1.6 over the reference: paired p = 0.042 on its own.
REF = [70.0, 70.5, 71.0]
ABOVE = [x + d for x, d in zip(REF, (0.8, 1.0, 1.6), strict=True)]


def test_one_comparison_is_resolved_but_two_are_corrected_for_each_other():
    p = stats.ttest_rel(ABOVE, REF).pvalue
    assert 0.025 < p < 0.05  # resolved alone, not after doubling (Holm, m = 2)
    one = findings(sweep({"paper": REF, "fixed": ABOVE}, axis="model.init", ref="paper"))
    assert [f.verdict for f in one] == ["higher"]
    two = findings(sweep({"paper": REF, "fixed": ABOVE, "other": ABOVE}, axis="model.init",
                         ref="paper"))  # fmt: skip
    assert [f.verdict for f in two] == ["no resolved difference"] * 2
    assert f"Holm-adjusted over 2 checks {min(1.0, 2 * p):.3g}" in two[0].checks[0].evidence


def test_a_claim_over_several_pairs_is_holm_corrected():
    uni = [x - d for x, d in zip(REF, (0.8, 1.0, 1.6), strict=True)]
    alone = findings(sweep({"uni": uni, "alternating": REF}))[0]  # one check: holds
    assert alone.verdict == HOLDS and "Holm" not in alone.rule
    both = findings(sweep({"uni": uni, "alternating": REF, "quad": REF}))[0]  # two checks
    assert both.verdict == INCONCLUSIVE and "Holm over its 2 accuracy checks" in both.rule
    assert [c.verdict for c in both.checks] == [INCONCLUSIVE, INCONCLUSIVE]
