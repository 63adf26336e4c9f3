"""The paper's qualitative claims, checked against the measured top-1 and cost of a sweep.

Decision rule. Each claim is split into checks; an accuracy check states a region for the true
top-1 difference ``Δ = mean(a) - mean(b)`` (percentage points) and looks at Δ's 95% Welch
t-interval over seeds (``stats.diff_to_reference``: paired on shared seeds, else Welch):

* **holds** if the CI lies inside the claimed region,
* **does not hold** if the CI lies entirely outside it,
* **inconclusive** if it straddles a bound, or if a variant has fewer than 2 complete seeds
  (no CI; the point difference is still shown), or no complete run at all.

Regions: "a better than b" is Δ > 0; "a worse than b" is Δ < 0; "a matches or beats b" is
Δ > -MARGIN (non-inferiority); "a and b within MARGIN" is -MARGIN < Δ < MARGIN, where
MARGIN = 0.6 pp is the paper's own bound for "no real difference" (Table 3).
Cost checks compare params and FLOPs (deterministic per variant): "more" holds if both
exceed b's by more than COST_TOL (relative), "same" holds if both are within COST_TOL;
otherwise the check does not hold; inconclusive if a value was not recorded.
A claim holds if all its checks hold, does not hold if any check does not hold, and is
inconclusive otherwise. A claim about a variant absent from the sweep is **not tested**.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ablations.report.load import Experiment
from ablations.report.stats import diff_to_reference, verdict_for

HOLDS, FAILS, INCONCLUSIVE, NOT_TESTED = "holds", "does not hold", "inconclusive", "not tested"
MARGIN = 0.6
COST_TOL = 0.01
INF = math.inf


@dataclass(frozen=True)
class Check:
    label: str
    verdict: str
    evidence: str


@dataclass(frozen=True)
class Finding:
    claim: str
    rule: str
    verdict: str
    checks: list[Check] = field(default_factory=list)
    note: str = ""


def combine(checks: list[Check]) -> str:
    """Claim verdict from its checks (see the module docstring)."""
    verdicts = [c.verdict for c in checks]
    if not verdicts or all(v == NOT_TESTED for v in verdicts):
        return NOT_TESTED
    if FAILS in verdicts:
        return FAILS
    return HOLDS if all(v == HOLDS for v in verdicts) else INCONCLUSIVE


def accuracy_check(exp: Experiment, a: str, b: str, lo: float, hi: float) -> Check:
    """Check that top-1 Δ = a - b lies in the open region (lo, hi)."""
    ci = diff_to_reference(exp.top1_by_seed(a), exp.top1_by_seed(b))
    label = f"{a} − {b}"
    if ci.n_a == 0 or ci.n_b == 0:
        gone = " or ".join(v for v, n in ((a, ci.n_a), (b, ci.n_b)) if n == 0)
        return Check(label, INCONCLUSIVE, f"no complete run of {gone}")
    evidence = f"Δ top-1 = {ci.diff:+.2f} pp"
    if ci.has_ci:
        evidence += f", 95% CI [{ci.low:+.2f}, {ci.high:+.2f}] (n = {ci.n_a} vs {ci.n_b})"
    else:
        evidence += f" (n = {ci.n_a} vs {ci.n_b}: fewer than 2 seeds, no CI)"
    return Check(label, verdict_for(ci, lo, hi), evidence)


def _cost(exp: Experiment, variant: str, col: str) -> float:
    vals = exp.rows(variant)[col]
    vals = vals[np.isfinite(vals)]
    return float(vals.median()) if len(vals) else math.nan


def cost_check(exp: Experiment, a: str, b: str, relation: str) -> Check:
    """Params and FLOPs of a compared with b: ``relation`` is "more" or "same"."""
    label = f"cost {a} vs {b}"
    pa, pb = _cost(exp, a, "params"), _cost(exp, b, "params")
    fa, fb = _cost(exp, a, "flops"), _cost(exp, b, "flops")
    if not all(math.isfinite(x) and x > 0 for x in (pa, pb, fa, fb)):
        return Check(label, INCONCLUSIVE, "params or FLOPs not recorded")
    rp, rf = pa / pb - 1, fa / fb - 1
    if relation == "more":
        ok = rp > COST_TOL and rf > COST_TOL
    else:
        ok = abs(rp) <= COST_TOL and abs(rf) <= COST_TOL
    evidence = f"params {pa / 1e6:.3f}M vs {pb / 1e6:.3f}M ({rp:+.1%}), "
    evidence += f"GFLOPs {fa / 1e9:.3f} vs {fb / 1e9:.3f} ({rf:+.1%})"
    return Check(label, HOLDS if ok else FAILS, evidence)


def _absent(exp: Experiment, names: list[str]) -> list[str]:
    return [n for n in names if n not in exp.variants]


def _finding(exp: Experiment, claim: str, rule: str, needs: list[str], make) -> Finding:
    """A finding whose checks are made only when every variant it needs was swept."""
    absent = _absent(exp, needs)
    if absent:
        note = f"not in the sweep: {', '.join(absent)}"
        return Finding(claim, rule, NOT_TESTED, [], note)
    checks = make()
    return Finding(claim, rule, combine(checks), checks)


SUP = "CI of Δ above 0: holds; below 0: does not hold"
NONINF = f"CI of Δ above −{MARGIN}: holds; below −{MARGIN}: does not hold"
MORE = f"params and FLOPs both more than {COST_TOL:.0%} higher: holds; else does not hold"
SAME = f"params and FLOPs both within {COST_TOL:.0%}: holds; else does not hold"


def _uni_worst(exp: Experiment) -> Finding:
    others = [v for v in exp.variants if v != "uni"]
    needs = ["uni"] + ([] if others else ["another traversal"])
    make = lambda: [accuracy_check(exp, v, "uni", 0, INF) for v in others]
    return _finding(
        exp, "uni-directional is clearly worst", f"every other − uni: {SUP}", needs, make
    )


def _bi_better(exp: Experiment) -> Finding:
    claim = "bi-directional improves over uni but costs params and FLOPs"
    rule = f"bi − uni: {SUP}; cost bi vs uni: {MORE}"
    make = lambda: [
        accuracy_check(exp, "bi", "uni", 0, INF),
        cost_check(exp, "bi", "uni", "more"),
    ]
    return _finding(exp, claim, rule, ["bi", "uni"], make)


def _sharing_loses(exp: Experiment) -> Finding:
    claim = "sharing the bi-directional parameters loses accuracy"
    rule = "bi_shared − bi: CI below 0: holds; above 0: does not hold"
    make = lambda: [accuracy_check(exp, "bi_shared", "bi", -INF, 0)]
    return _finding(exp, claim, rule, ["bi_shared", "bi"], make)


def _alternating_matches(exp: Experiment) -> Finding:
    claim = "alternating matches or beats bi and bi_shared at the cost of uni"
    rule = f"alternating − bi, alternating − bi_shared: {NONINF}; "
    rule += f"cost alternating vs uni: {SAME}"
    make = lambda: [
        accuracy_check(exp, "alternating", "bi", -MARGIN, INF),
        accuracy_check(exp, "alternating", "bi_shared", -MARGIN, INF),
        cost_check(exp, "alternating", "uni", "same"),
    ]
    return _finding(exp, claim, rule, ["alternating", "bi", "bi_shared", "uni"], make)


def traversal_findings(exp: Experiment) -> list[Finding]:
    """The paper's Table 2 claims (vil-facts.md section 5)."""
    return [f(exp) for f in (_uni_worst, _bi_better, _sharing_loses, _alternating_matches)]


def pooling_findings(exp: Experiment) -> list[Finding]:
    """The paper's Table 3 claim: every pair of poolings within MARGIN points."""
    pairs = list(combinations(exp.variants, 2))
    rule = f"every pairwise CI of Δ inside (−{MARGIN}, {MARGIN}): holds; any CI entirely "
    rule += "outside: does not hold"
    claim = f"all pooling variants land within about {MARGIN} points"
    needs = [] if pairs else ["a second pooling"]
    make = lambda: [accuracy_check(exp, a, b, -MARGIN, MARGIN) for a, b in pairs]
    return [_finding(exp, claim, rule, needs, make)]


def findings(exp: Experiment) -> list[Finding]:
    """Findings for the experiment's axis."""
    return pooling_findings(exp) if exp.axis == "pooling" else traversal_findings(exp)


def findings_markdown(items: list[Finding]) -> str:
    """A summary table of verdicts, then every check with its numbers."""
    lines = ["| Claim (paper) | Verdict | Decision rule |", "| :--- | :--- | :--- |"]
    lines += [f"| {f.claim} | **{f.verdict}** | {f.rule} |" for f in items]
    lines.append("")
    for f in items:
        lines.append(f"- **{f.claim}**: {f.verdict}" + (f" ({f.note})" if f.note else ""))
        lines += [f"  - {c.label}: {c.verdict}; {c.evidence}" for c in f.checks]
    return "\n".join(lines) + "\n"


def findings_rows(items: list[Finding]) -> list[dict]:
    """Flat rows (one per check, or per claim when untested) for findings.csv."""
    rows = []
    for f in items:
        base = {"claim": f.claim, "claim_verdict": f.verdict, "rule": f.rule}
        if not f.checks:
            rows.append(base | {"check": "", "verdict": f.verdict, "evidence": f.note})
        rows += [base | {"check": c.label, "verdict": c.verdict, "evidence": c.evidence}
                 for c in f.checks]  # fmt: skip
    return rows
