"""Read one experiment folder (experiment.json, runs.csv, the run records, per-run
metrics.csv) for reporting. Settings come from the records, never from the current command.

The grid (variants x seeds of experiment.json) is completed with MISSING rows for grid points
that runs.csv does not list, and variants found only in runs.csv are appended: a report never
drops a run silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ablations.report.noise import Eval
from ablations.schema.points import Point
from ablations.schema.record import (
    CSV_COLUMNS,
    NUMERIC_COLUMNS,
    RunRecord,
    decode_correct,
    read_all,
)

STATES = ("COMPLETE", "TRUNCATED", "FAIL", "INTERRUPTED", "RUNNING", "WAITING", "MISSING")
NUMERIC = NUMERIC_COLUMNS
TEXT = tuple(c for c in CSV_COLUMNS if c not in NUMERIC_COLUMNS)
COLUMNS = CSV_COLUMNS


@dataclass
class Experiment:
    """One sweep: its metadata and one row per grid point (state, metrics, cost)."""

    exp_dir: Path
    meta: dict[str, Any]
    runs: pd.DataFrame
    records: list[RunRecord] = field(default_factory=list)  # the result.json of every run
    include_truncated: bool = False  # --include-truncated: TRUNCATED runs count as results
    out_dir: Path | None = None  # where the report goes (report --out); None: exp_dir

    @property
    def write_dir(self) -> Path:
        """The folder the report's files are written to (exp_dir is only read)."""
        return self.out_dir if self.out_dir is not None else self.exp_dir

    @property
    def result_states(self) -> tuple[str, ...]:
        """States of the runs that enter tables and intervals."""
        return ("COMPLETE", "TRUNCATED") if self.include_truncated else ("COMPLETE",)

    @property
    def name(self) -> str:
        return str(self.meta.get("experiment", self.exp_dir.name))

    @property
    def axis(self) -> str:
        return str(self.meta.get("axis", "traversal"))

    @property
    def reference(self) -> str | None:
        return self.meta.get("reference")

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.meta.get("seeds", [])]

    @property
    def variants(self) -> list[str]:
        """Variants of experiment.json in order, then any extra ones found in runs.csv."""
        listed = [str(v) for v in self.meta.get("variants", [])]
        extra = [v for v in dict.fromkeys(self.runs["variant"]) if v not in listed]
        return listed + extra

    def recorded(self) -> list[RunRecord]:
        """Records of runs that started (complete ones first): the settings' source."""
        started = [r for r in self.records if r.config]
        return sorted(started, key=lambda r: r.state != "COMPLETE")

    def config(self, *keys: str, default: Any = None) -> Any:
        """A value of the resolved config the runs recorded, e.g. ``config("model", "dim")``
        (from a complete run where there is one; ``default`` when no run recorded it)."""
        for rec in self.recorded():
            node: Any = rec.config
            for key in keys:
                node = node.get(key) if isinstance(node, dict) else None
            if keys in (("model", "dim"), ("model", "depth")) and node is None:
                node = rec.dim if keys[1] == "dim" else rec.depth
            if node is not None:
                return node
        return default

    def top1_by_seed(self, variant: str) -> dict[int, float]:
        """seed -> top-1 of the complete runs of ``variant`` (for paired statistics)."""
        return self.by_seed(variant, "top1")

    def by_seed(self, variant: str, metric: str) -> dict[int, float]:
        """seed -> ``metric`` of the complete runs of ``variant``."""
        done = self.complete(variant, metric)
        return {int(s): float(v) for s, v in zip(done["seed"], done[metric], strict=True)}

    def evals(self, variant: str, metric: str = "top1") -> dict[int, Eval]:
        """seed -> what the complete run's evaluation recorded (per-image top-1 correctness
        from its record, the validation-set size from its row) for the noise floor."""
        done = self.complete(variant, metric)
        recs = {r.point: r for r in self.records if r.variant == variant}
        out = {}
        for seed, n in zip(done["seed"], done["val_images"], strict=True):
            rec = recs.get((variant, int(seed)))
            correct = decode_correct(rec.val_correct) if rec and metric == "top1" else None
            out[int(seed)] = Eval(correct, int(n) if np.isfinite(n) and n > 0 else None)
        return out

    def rows(self, variant: str) -> pd.DataFrame:
        return self.runs[self.runs["variant"] == variant]

    def complete(self, variant: str, metric: str = "top1") -> pd.DataFrame:
        """Complete runs of ``variant`` that report a finite ``metric`` (with
        ``include_truncated``, TRUNCATED ones too)."""
        r = self.rows(variant)
        return r[r["state"].isin(self.result_states) & np.isfinite(r[metric])]

    def truncated(self) -> pd.DataFrame:
        """Rows of runs stopped by their budget before the last epoch."""
        return self.runs[self.runs["state"] == "TRUNCATED"]


def _normalise(runs: pd.DataFrame) -> pd.DataFrame:
    """Give runs.csv every column with one dtype, whatever the harness wrote."""
    runs = runs.copy()
    for col in COLUMNS:
        if col not in runs.columns:
            runs[col] = np.nan if col in NUMERIC else ""
    for col in NUMERIC:
        runs[col] = pd.to_numeric(runs[col], errors="coerce").astype(float)
    for col in TEXT:
        runs[col] = runs[col].astype(object).fillna("").astype(str)
    runs["state"] = runs["state"].str.strip().str.upper().replace("", "MISSING")
    return runs


def _complete_grid(runs: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """Add a MISSING row for every (variant, seed) of the grid that runs.csv lacks."""
    have = set(zip(runs["variant"], runs["seed"], strict=True))
    grid = [(v, s) for v in meta.get("variants", []) for s in meta.get("seeds", [])]
    if "points" in meta:  # the points asked for (a subset of variants x seeds)
        points = (Point.parse(n) for n in meta["points"])
        grid = [(p.variant, p.seed) for p in points if p is not None]
    extra = []
    for variant, seed in grid:
        if (str(variant), float(seed)) not in have:
            extra.append({"variant": str(variant), "seed": float(seed), "state": "MISSING"})
    if not extra:
        return runs
    return _normalise(pd.concat([runs, pd.DataFrame(extra)], ignore_index=True))


def load_experiment(
    exp_dir: Path, include_truncated: bool = False, runs_csv: Path | None = None
) -> Experiment:
    """Read ``exp_dir`` (``runs_csv``: its runs.csv written elsewhere, e.g. beside a report
    of a read-only folder); a missing runs.csv means every grid point is MISSING."""
    exp_dir = Path(exp_dir)
    meta = json.loads((exp_dir / "experiment.json").read_text())
    csv = Path(runs_csv) if runs_csv is not None else exp_dir / "runs.csv"
    runs = pd.read_csv(csv) if csv.exists() and csv.stat().st_size else pd.DataFrame()
    runs = _complete_grid(_normalise(runs), meta)
    return Experiment(exp_dir, meta, runs.reset_index(drop=True), read_all(exp_dir),
                      include_truncated)  # fmt: skip


def status_counts(exp: Experiment) -> pd.DataFrame:
    """Per variant: how many grid points are in each state (plus a total)."""
    rows = []
    for variant in exp.variants:
        states = exp.rows(variant)["state"]
        counts = {s.lower(): int((states == s).sum()) for s in STATES}
        counts["other"] = int((~states.isin(STATES)).sum())
        rows.append({"variant": variant, **counts, "total": int(len(states))})
    return pd.DataFrame(rows)


MISSING_REASON = "no run record and no trial: never trained (the next `sweep` naming it trains it)"


def failures(exp: Experiment) -> pd.DataFrame:
    """Failed and MISSING grid points, and any run that states a failure reason, with it."""
    r = exp.runs
    stated = (r["fail_reason"].str.strip() != "") & (r["state"] != "TRUNCATED")  # not a failure
    bad = r[r["state"].isin(("FAIL", "MISSING")) | stated]
    out = bad[["variant", "seed", "state", "fail_reason", "epochs_done"]].copy()
    missing = (out["state"] == "MISSING") & (out["fail_reason"] == "")
    out.loc[missing, "fail_reason"] = MISSING_REASON
    out["fail_reason"] = out["fail_reason"].replace("", "(no reason recorded)")
    return out.reset_index(drop=True)


def learning_curves(exp: Experiment) -> dict[tuple[str, int, str], pd.DataFrame]:
    """metrics.csv of every run that has one, keyed by (variant, seed, state)."""
    out = {}
    for row in exp.runs.itertuples():
        if not row.run_dir:
            continue
        path = exp.exp_dir / row.run_dir / "metrics.csv"
        if path.exists() and path.stat().st_size:
            df = pd.read_csv(path)
            for col in df.columns:
                df[col] = pd.to_numeric(df[col], errors="coerce")
            seed = int(row.seed) if np.isfinite(row.seed) else -1
            out[(row.variant, seed, row.state)] = df
    return out
