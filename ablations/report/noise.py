"""The evaluation-noise floor of a top-1 difference: what the validation set can resolve.

A run's top-1 on N validation images is an estimate with sampling noise, so two seeds whose
differences happen to be equal (-1.40 and -1.40 on 500 images, where accuracy moves in 0.2
point steps) do not make the difference certain. The per-seed difference's variance is at
least that noise (percentage points squared), and the statistics use
``max(seed variance, floor)`` (``stats.py``, ``power.py``):

- **paired** (the same images for both runs of a seed): from the discordant counts, as in
  McNemar's test. With b10 images right only in run a and b01 right only in run b,
  ``Var(acc_a - acc_b) = (b10 + b01 - (b10 - b01)^2 / N) / N^2`` (x 100^2 in pp^2). Where the
  records hold no per-image correctness, the counts are bounded by the difference itself
  (b10 + b01 >= |b10 - b01| = N |Δ| / 100), which gives a smaller, still non-zero floor;
- **unpaired** (Welch): binomial, ``p (1 - p) / N`` per run, for each side.

Zero discordant images count as one (the smallest difference the set resolves), and p is kept
within [1/N, 1 - 1/N], so a floor is never zero where N is known. A run that recorded neither
its correctness nor its validation-set size has no floor (NaN).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PP2 = 100.0**2  # proportions^2 -> percentage points^2


@dataclass(frozen=True)
class Eval:
    """What a run's last evaluation recorded: per-image top-1 correctness and set size."""

    correct: np.ndarray | None = None
    n_images: int | None = None

    @property
    def size(self) -> int | None:
        return int(self.correct.size) if self.correct is not None else self.n_images


@dataclass(frozen=True)
class Noise:
    """Floor variances (pp^2) per seed: of the paired difference and of each side's run."""

    paired: dict[int, float] = field(default_factory=dict)
    a: dict[int, float] = field(default_factory=dict)
    b: dict[int, float] = field(default_factory=dict)
    source: dict[int, str] = field(default_factory=dict)  # how each paired floor was found

    def paired_var(self, seeds: list[int]) -> float:
        """Mean floor of the per-seed differences over ``seeds`` (NaN if any is unknown)."""
        return _mean([self.paired.get(s, math.nan) for s in seeds])

    def side_var(self, side: str, seeds: list[int]) -> float:
        values = self.a if side == "a" else self.b
        return _mean([values.get(s, math.nan) for s in seeds])


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values and all(math.isfinite(v) for v in values) else math.nan


def mcnemar_var(a: np.ndarray, b: np.ndarray) -> float:
    """Var of acc_a - acc_b (pp^2) on the same images, from the discordant counts."""
    n = a.size
    b10, b01 = int(np.sum(a & ~b)), int(np.sum(~a & b))
    k = max(b10 + b01, 1)
    return (k - (b10 - b01) ** 2 / n) / n**2 * PP2


def bound_var(diff_pct: float, n: int) -> float:
    """The smallest paired floor consistent with a difference of ``diff_pct`` on n images."""
    k = max(round(abs(diff_pct) * n / 100.0), 1)
    return (k - k**2 / n) / n**2 * PP2


def binomial_var(acc_pct: float, n: int) -> float:
    """Var of one run's accuracy (pp^2) on n images."""
    p = min(max(acc_pct / 100.0, 1.0 / n), 1.0 - 1.0 / n)
    return p * (1.0 - p) / n * PP2


def noise(
    a_top1: Mapping[int, float],
    b_top1: Mapping[int, float],
    a_eval: Mapping[int, Eval],
    b_eval: Mapping[int, Eval],
) -> Noise:
    """The floors of ``a - b`` for every seed with results (seed -> top-1 and Eval)."""
    out = Noise()
    for side, top1, evals in (("a", a_top1, a_eval), ("b", b_top1, b_eval)):
        store = out.a if side == "a" else out.b
        for s, acc in top1.items():
            n = evals.get(s, Eval()).size
            if n:
                store[s] = binomial_var(acc, n)
    for s in set(a_top1) & set(b_top1):
        ea, eb = a_eval.get(s, Eval()), b_eval.get(s, Eval())
        if ea.correct is not None and eb.correct is not None and ea.size == eb.size:
            out.paired[s], out.source[s] = mcnemar_var(ea.correct, eb.correct), "discordant"
        elif ea.size and ea.size == eb.size:
            out.paired[s] = bound_var(a_top1[s] - b_top1[s], ea.size)
            out.source[s] = "bound"
    return out


def source_text(nz: Noise | None, seeds: list[int]) -> str:
    """How the paired floor over ``seeds`` was found, for the table note."""
    kinds = {nz.source.get(s, "none") for s in seeds} if nz else {"none"}
    if kinds == {"discordant"}:
        return "discordant counts of the recorded per-image correctness (McNemar)"
    if "none" in kinds:
        return "not recorded"
    return "a lower bound from |Δ| and the validation-set size (per-image correctness not recorded)"


def for_experiment(exp: Any, a: str, b: str, metric: str = "top1") -> Noise:
    """The floors of ``a - b`` in a loaded experiment (``load.Experiment``)."""
    return noise(exp.by_seed(a, metric), exp.by_seed(b, metric), exp.evals(a, metric),
                 exp.evals(b, metric))  # fmt: skip
