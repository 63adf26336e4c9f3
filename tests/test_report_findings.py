"""The paper's claims judged on constructed sweeps: one where they hold, one where they fail."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablations.report.findings import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_TESTED,
    findings,
    findings_markdown,
)
from ablations.report.load import Experiment, _complete_grid, _normalise

UNI_COST = (5.889e6, 1.1e9)
COST = {"bi": (6.286e6, 2.0e9), "bi_shared": (5.889e6, 2.0e9)}


def sweep(top1: dict[str, list[float]], axis: str = "traversal", cost=None) -> Experiment:
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
    items = findings(sweep({"uni": [60.0, 61.0], "alternating": [70.0, 71.0]}))
    assert [f.verdict for f in items] == [HOLDS, NOT_TESTED, NOT_TESTED, NOT_TESTED]
    assert "bi" in items[1].note and not items[1].checks


def test_pooling_claim():
    close = {"avg": [70.0, 70.1, 70.2], "bilateral_avg": [70.2, 70.3, 70.4]}
    assert verdicts(sweep(close, axis="pooling")) == [HOLDS]
    apart = {"avg": [70.0, 70.1, 70.2], "bilateral_concat": [72.0, 72.1, 72.2]}
    assert verdicts(sweep(apart, axis="pooling")) == [FAILS]
    assert verdicts(sweep({"avg": [70.0, 70.1]}, axis="pooling")) == [NOT_TESTED]
