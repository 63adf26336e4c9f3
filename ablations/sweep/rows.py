"""runs.csv of an experiment folder: every run record found there, with the study's live
state (WAITING / RUNNING) laid over it, plus a row for each point asked for that has none.

Whatever subset the current command named, every run in the folder is listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablations.schema import record as runs
from ablations.schema.files import read_json
from ablations.schema.points import Point
from ablations.schema.record import RunRecord
from ablations.study.queue import LOST_REASON, live_states


def collect(exp_dir: Path, study: Any = None) -> list[RunRecord]:
    """One record per point: the folder's records and the points of experiment.json."""
    meta = read_json(Path(exp_dir) / "experiment.json") or {}
    live = live_states(study)
    found = {r.point: r for r in runs.read_all(exp_dir)}
    points = (Point.parse(n) for n in meta.get("points", []))
    asked = [(p.variant, p.seed) for p in points if p is not None]
    out = []
    for point in dict.fromkeys([*asked, *found]):
        rec = found.get(point) or RunRecord(
            experiment=meta.get("experiment", ""), protocol=meta.get("protocol", ""),
            variant=point[0], seed=point[1], axis=meta.get("axis", ""),
            run_dir=f"runs/{point[0]}-s{point[1]}",
        )  # fmt: skip
        _overlay(rec, *live.get(point, ("", "", "")))
        out.append(rec)
    order = {v: i for i, v in enumerate(meta.get("variants", []))}
    return sorted(out, key=lambda r: (order.get(r.variant, len(order)), r.variant, r.seed))


def _overlay(rec: RunRecord, trial_state: str, kind: str, reason: str) -> None:
    """The study knows what is queued or running now; the record knows what happened. A
    trial that failed before its run wrote a record is a failure with the trial's reason,
    not a MISSING point (status, runs.csv and the report say the same)."""
    if trial_state in runs.LIVE_STATES and rec.state != "COMPLETE":
        rec.state = trial_state
    elif rec.state == "RUNNING":  # nobody runs it any more: its worker died
        rec.state, rec.fail_reason = "FAIL", LOST_REASON
    elif trial_state == "FAIL" and rec.state == "MISSING":
        if kind == "interrupted":
            rec.state, rec.fail_reason = "INTERRUPTED", "interrupted"
        else:
            lost = kind == "worker_lost"
            rec.state, rec.fail_reason = "FAIL", LOST_REASON if lost else reason or kind


def write_runs(exp_dir: Path, study: Any = None, path: Path | None = None) -> Path:
    """Rewrite ``exp_dir/runs.csv`` (or ``path``) from the records (see ``collect``)."""
    path = Path(path) if path is not None else Path(exp_dir) / "runs.csv"
    runs.write_runs_csv(path, collect(exp_dir, study))
    return path


def counts(records: list[RunRecord]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        out[r.state] = out.get(r.state, 0) + 1
    return out
