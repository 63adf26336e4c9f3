"""Seeds planned before a sweep: what a grid's seeds resolve at 80% power, from the spread
measured by a finished calibration (``calibration.json``) or an earlier sweep of the same
protocol and dataset in the results folder (``sweep --dry-run`` states it).

Same dataset: equal ``data.*`` science keys (``calibration_out.dataset_keys``; the planted
arm's own label noise aside). The spread is the sd of per-seed paired differences: the A/A
differences of a calibration, else the pooled (df-weighted) variance of every variant's
differences from its reference over >= MIN_CLAIM_SEEDS shared seeds in an earlier sweep.
A calibration is preferred (nothing but noise differs in it); among sweeps, the one with the
most degrees of freedom.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ablations.report.calibration_out import JSON_FILE, dataset_keys
from ablations.report.load import load_experiment
from ablations.report.power import POWER, min_resolvable_difference, seeds_needed
from ablations.report.stats import MIN_CLAIM_SEEDS

CALIBRATION_DIR = "calibration"


@dataclass(frozen=True)
class Spread:
    """A measured paired spread and where it came from."""

    sd: float  # pp: sd of per-seed paired differences (at least the floor)
    seeds: int  # seeds it was measured on
    source: Path  # the folder
    kind: str  # "calibration" | "sweep"
    own_sd: float = math.nan  # the seeds' own sd, apart from ...
    floor_var: float = math.nan  # ... the evaluation-noise floor (pp^2; power.py)

    @property
    def power_args(self) -> tuple[float, float]:
        """(sd, floor_var) for power.py: the seeds' own sd and the floor where both are known."""
        if math.isfinite(self.own_sd) and math.isfinite(self.floor_var):
            return self.own_sd, self.floor_var
        return self.sd, math.nan


def _from_calibration(folder: Path, dataset: dict[str, Any]) -> Spread | None:
    try:
        data = json.loads((folder / JSON_FILE).read_text())
    except (OSError, ValueError):
        return None
    spread = data.get("spread", {})
    sd, n = spread.get("paired_sd"), len(data.get("seeds", []))
    if data.get("dataset") != dataset or not isinstance(sd, float) or not math.isfinite(sd):
        return None
    own, floor = (spread.get(k) for k in ("own_sd", "floor_var"))
    extra = [float(x) if isinstance(x, int | float) else math.nan for x in (own, floor)]
    return Spread(sd, n, folder, "calibration", *extra) if n >= MIN_CLAIM_SEEDS else None


def _from_sweep(folder: Path, dataset: dict[str, Any]) -> tuple[Spread, int] | None:
    """The pooled paired spread of a sweep folder (and its degrees of freedom)."""
    try:
        exp = load_experiment(folder)
    except (OSError, ValueError, KeyError):
        return None
    ref = exp.reference
    recs = [r for r in exp.records if r.variant == ref and r.science and r.state == "COMPLETE"]
    if not recs or dataset_keys(recs[0].science) != dataset:
        return None
    base, ss, df, seeds = exp.top1_by_seed(ref), 0.0, 0, set()
    for v in exp.variants:
        mine = exp.top1_by_seed(v) if v != ref else {}
        shared = sorted(set(mine) & set(base))
        if len(shared) >= MIN_CLAIM_SEEDS:
            d = [mine[s] - base[s] for s in shared]
            ss, df = ss + float(np.var(d, ddof=1)) * (len(d) - 1), df + len(d) - 1
            seeds |= set(shared)
    if df == 0:
        return None
    return Spread(math.sqrt(ss / df), len(seeds), folder, "sweep"), df


def known_spread(results: Path, protocol: str, dataset: dict[str, Any]) -> Spread | None:
    """The spread of a finished calibration, else of the best earlier sweep (None: none)."""
    root = Path(results) / protocol
    found = _from_calibration(root / CALIBRATION_DIR, dataset)
    if found is not None:
        return found
    sweeps = [_from_sweep(p.parent, dataset) for p in sorted(root.glob("*/experiment.json"))
              if p.parent.name != CALIBRATION_DIR]  # fmt: skip
    best = max((s for s in sweeps if s is not None), key=lambda s: s[1], default=None)
    return best[0] if best else None


def seeds_line(spread: Spread | None, n_seeds: int, results: Path, protocol: str) -> str:
    """The dry run's statement of what ``n_seeds`` paired seeds resolve (or how to know)."""
    if spread is None:
        cmd = shlex.join(["vil-ablate", "calibrate", "--protocol", protocol, "--results",
                          str(results), "--seeds", "0-19"])  # fmt: skip
        return (
            f"seeds: no measured spread for protocol {protocol} and this dataset in "
            f"{results} (no finished calibration or earlier sweep); get one with: {cmd}"
        )
    what = ("the A/A differences of the calibration" if spread.kind == "calibration"
            else "the paired differences of the earlier sweep")  # fmt: skip
    sd, floor = spread.power_args
    res = min_resolvable_difference(sd, n_seeds, paired=True, floor_var=floor)
    need = seeds_needed(sd, floor_var=floor)
    head = (f"seeds: {n_seeds} paired seed(s) per variant resolve {res:.2f} pp at "
            f"{POWER:.0%} power" if n_seeds >= MIN_CLAIM_SEEDS else
            f"seeds: {n_seeds} seed(s) per variant decide no claim (the report needs "
            f">= {MIN_CLAIM_SEEDS})")  # fmt: skip
    return (
        f"{head}; 0.6 pp needs {need if need else 'more than 1000'} seeds (spread "
        f"{spread.sd:.3f} pp, sd of {what} in {spread.source}, {spread.seeds} seeds)"
    )
