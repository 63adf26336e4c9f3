"""The paper's qualitative claims, checked against the measured top-1 and cost of a sweep.

Decision rule. Each claim is split into checks; an accuracy check states a region for the true
top-1 difference ``Δ = mean(a) - mean(b)`` (percentage points) and looks at Δ's 95% Welch
t-interval over seeds (``stats.diff_to_reference``: paired on shared seeds, else Welch):

* **holds** if the CI lies inside the claimed region,
* **does not hold** if the CI lies entirely outside it,
* **inconclusive** if it straddles a bound, or if a variant has fewer than 2 complete seeds
  (no CI; the point difference is still shown), or no complete run at all,
* **inconclusive (n < 3)** whatever the interval (shown) when a side has fewer than 3
  complete seeds: two seeds can agree by chance (accuracy moves in steps of 100/N points),
* **not comparable** if the two variants were not trained alike (``comparable.py``): no
  interval is formed and the claim cannot hold on it.

The interval's spread is never below the validation set's sampling noise (``noise.py``).
A declared confound (experiments.yaml ``confounds:``) keeps the check, marked in its evidence.

A claim that tests several pairs is corrected for it (Holm): each check's p-value (the
smallest alpha at which its (1 - alpha) interval reaches its verdict, ``stats.region_p``) is
Holm-adjusted over the claim's checks, and the verdict stands only where the adjusted p is
below 5%; otherwise the check is inconclusive. With one check this is the 95% CI rule.

Regions: "a better than b" is Δ > 0; "a worse than b" is Δ < 0; "a matches or beats b" is
Δ > -MARGIN (non-inferiority); "a and b within MARGIN" is -MARGIN < Δ < MARGIN, where
MARGIN = 0.6 pp is the paper's own bound for "no real difference" (Table 3).
Cost checks compare params and FLOPs (deterministic per variant): "more" holds if both
exceed b's by more than COST_TOL (relative), "same" holds if both are within COST_TOL;
otherwise the check does not hold; inconclusive if a value was not recorded.
A claim holds if all its checks hold, does not hold if any check does not hold, and is
inconclusive otherwise. A claim about a variant absent from the sweep is **not tested**.

Which claims: the paper's Table 2 claims for a traversal axis, its Table 3 claim for a
pooling axis (``AXIS_FINDINGS``); any other axis gets a plain comparison of every variant
with the reference (higher / lower / no resolved difference, Holm over the variants).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ablations.report import comparable
from ablations.report.load import Experiment
from ablations.report.noise import for_experiment
from ablations.report.stats import (
    INCONCLUSIVE_N,
    LEVEL,
    diff_to_reference,
    holm,
    region_p,
    verdict_for,
)

HOLDS, FAILS, INCONCLUSIVE, NOT_TESTED = "holds", "does not hold", "inconclusive", "not tested"
NOT_COMPARABLE = comparable.NOT_COMPARABLE
ALPHA = 1 - LEVEL
MARGIN = 0.6
COST_TOL = 0.01
INF = math.inf


@dataclass(frozen=True)
class Check:
    label: str
    verdict: str
    evidence: str
    p: float = math.nan  # accuracy checks: p of the verdict the interval points to
    reached: str = ""  # that verdict (holds / does not hold), before the Holm correction


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
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    return INCONCLUSIVE_N if INCONCLUSIVE_N in verdicts else INCONCLUSIVE  # not comparable too


def accuracy_check(exp: Experiment, a: str, b: str, lo: float, hi: float) -> Check:
    """Check that top-1 Δ = a - b lies in the open region (lo, hi) (uncorrected: holm_checks)."""
    label = f"{a} − {b}"
    check = comparable.pair_check(exp, a, b)
    if check.keys:
        return Check(label, NOT_COMPARABLE, check.note())
    noise = for_experiment(exp, a, b)
    ci = diff_to_reference(exp.top1_by_seed(a), exp.top1_by_seed(b), noise=noise)
    if ci.n_a == 0 or ci.n_b == 0:
        gone = " or ".join(v for v, n in ((a, ci.n_a), (b, ci.n_b)) if n == 0)
        return Check(label, INCONCLUSIVE, f"no complete run of {gone}")
    evidence = f"Δ top-1 = {ci.diff:+.2f} pp"
    if not ci.has_ci:
        evidence += f" (n = {ci.n_a} vs {ci.n_b}: fewer than 2 seeds, no CI)"
        return Check(label, INCONCLUSIVE, evidence)
    evidence += f", 95% CI [{ci.low:+.2f}, {ci.high:+.2f}] (n = {ci.n_a} vs {ci.n_b})"
    evidence += " (spread at the evaluation-noise floor)" if ci.floored else ""
    evidence += f"; {check.note()}" if check.declared else ""
    if not ci.enough_seeds:  # shown, never decided: not among the Holm-corrected checks
        return Check(label, INCONCLUSIVE_N, evidence)
    inside, outside = region_p(ci, lo, hi)
    p, reached = (inside, HOLDS) if inside <= outside else (outside, FAILS)
    return Check(label, verdict_for(ci, lo, hi), evidence, p, reached)


def holm_checks(checks: list[Check]) -> list[Check]:
    """Holm-correct the accuracy checks among ``checks`` (those with a p-value)."""
    adjusted = holm([c.p for c in checks])
    m = sum(math.isfinite(c.p) for c in checks)
    out = []
    for c, adj in zip(checks, adjusted, strict=True):
        if not math.isfinite(c.p):
            out.append(c)
            continue
        verdict = c.reached if adj < ALPHA else INCONCLUSIVE
        evidence = f"{c.evidence}; p = {c.p:.3g}" + (f", Holm-adjusted over {m} checks "
                                                     f"{adj:.3g}" if m > 1 else "")  # fmt: skip
        out.append(dataclasses.replace(c, verdict=verdict, evidence=evidence))
    return out


def _cost(exp: Experiment, variant: str, col: str) -> float:
    vals = exp.rows(variant)[col]
    vals = vals[np.isfinite(vals)]
    return float(vals.median()) if len(vals) else math.nan


def cost_check(exp: Experiment, a: str, b: str, relation: str) -> Check:
    """Params and FLOPs of a compared with b: ``relation`` is "more" or "same"."""
    label = f"cost {a} vs {b}"
    check = comparable.pair_check(exp, a, b)
    if check.keys:
        return Check(label, NOT_COMPARABLE, check.note())
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
    checks = holm_checks(make())
    m = sum(math.isfinite(c.p) for c in checks)
    rule += f"; Holm over its {m} accuracy checks" if m > 1 else ""
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
    """The paper's Table 2 claims (docs/vil-facts.md, "The Table 2 claims")."""
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


HIGHER, LOWER, UNRESOLVED = "higher", "lower", "no resolved difference"
_PLAIN = {HOLDS: HIGHER, FAILS: LOWER, INCONCLUSIVE: UNRESOLVED,
          INCONCLUSIVE_N: f"{UNRESOLVED} ({INCONCLUSIVE_N})"}  # fmt: skip


def plain_findings(exp: Experiment) -> list[Finding]:
    """Every variant against the reference, two-sided, Holm over the variants (no paper
    claim exists for this axis)."""
    ref = exp.reference
    others = [v for v in exp.variants if v != ref]
    rule = f"CI of Δ above 0: {HIGHER}; below 0: {LOWER}; else {UNRESOLVED}"
    rule += f" (Holm over the {len(others)} comparisons with {ref})" if len(others) > 1 else ""
    if ref not in exp.variants or not others:
        what = f"the reference {ref}" if ref not in exp.variants else "a second variant"
        claim = f"variants vs the reference {ref}"
        return [Finding(claim, rule, NOT_TESTED, [], f"not in the sweep: {what}")]
    checks = holm_checks([accuracy_check(exp, v, ref, 0, INF) for v in others])
    out = []
    for v, c in zip(others, checks, strict=True):
        c = dataclasses.replace(c, verdict=_PLAIN.get(c.verdict, c.verdict))
        out.append(Finding(f"{v} vs the reference {ref} (top-1)", rule, c.verdict, [c]))
    return out


AXIS_FINDINGS: dict[str, Callable[[Experiment], list[Finding]]] = {
    "traversal": traversal_findings,  # the paper's Table 2
    "pooling": pooling_findings,  # the paper's Table 3
}


def findings(exp: Experiment) -> list[Finding]:
    """Findings for the experiment's axis: the paper's claims where it made some."""
    return AXIS_FINDINGS.get(exp.axis, plain_findings)(exp)


def findings_markdown(items: list[Finding], head: str = "Claim (paper)") -> str:
    """A summary table of verdicts, then every check with its numbers."""
    lines = [f"| {head} | Verdict | Decision rule |", "| :--- | :--- | :--- |"]
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
