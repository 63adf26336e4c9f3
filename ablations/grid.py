"""The grid of an experiment (variant x seed) in an Optuna study, and its result files.

A grid point is identified by the trial's user attributes ``variant`` and ``seed`` (set at
enqueue time). A point is done when a COMPLETE trial exists for it; ``reconcile`` enqueues
what is missing (under the grid lock), including retries of interrupted or lost trials,
which then resume from the checkpoint in the trial folder.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ablations.train.records import atomic_write, read_json

RUNS_COLUMNS = (
    "experiment", "protocol", "variant", "traversal", "pooling", "seed", "state", "params",
    "flops", "top1", "top5", "train_time_s", "img_per_s", "peak_mem_mb", "epochs_done",
    "fail_reason", "run_dir",
)  # fmt: skip
RETRYABLE = ("interrupted", "worker_lost")  # fail kinds a retry resumes from the checkpoint
LOST_REASON = "worker lost (no heartbeat); retried from its last checkpoint"


@dataclass(frozen=True)
class Point:
    variant: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.variant}-s{self.seed}"

    @property
    def run_dir(self) -> str:
        """Relative to the experiment folder."""
        return f"runs/{self.name}"


def points(variants: list[str], seeds: list[int]) -> list[Point]:
    return [Point(v, s) for v in variants for s in seeds]


def point_of(t: FrozenTrial) -> Point | None:
    v, s = t.user_attrs.get("variant"), t.user_attrs.get("seed")
    return Point(v, int(s)) if v is not None and s is not None else None


def by_point(study: optuna.Study) -> dict[Point, list[FrozenTrial]]:
    out: dict[Point, list[FrozenTrial]] = defaultdict(list)
    for t in study.get_trials(deepcopy=False):
        p = point_of(t)
        if p is not None:
            out[p].append(t)
    return out


def fail_kind(t: FrozenTrial) -> str:
    """FAIL trials without a recorded kind were failed by the heartbeat check."""
    return t.user_attrs.get("fail_kind", "worker_lost")


def _decide(
    ts: list[FrozenTrial], initial: bool, rerun: bool, retry_failed: bool, max_retries: int
):
    """What to enqueue for one point: None, or (resume?, reason)."""
    states = {t.state for t in ts}
    if TrialState.WAITING in states or TrialState.RUNNING in states:
        return None
    if initial and rerun:
        return (False, "rerun")
    if TrialState.COMPLETE in states:
        return None
    if not ts:
        return (False, "new")
    last = max(ts, key=lambda t: t.number)
    kind = fail_kind(last)
    if kind in RETRYABLE:
        lost = sum(fail_kind(t) == "worker_lost" for t in ts if t.state == TrialState.FAIL)
        if initial or lost <= max_retries:
            return (True, f"retry after {kind}")
        return None
    return (False, "retry after failure") if initial and retry_failed else None


def reconcile(
    study: optuna.Study,
    grid: list[Point],
    *,
    initial: bool = False,
    rerun: bool = False,
    retry_failed: bool = False,
    max_retries: int = 3,
) -> list[tuple[Point, str]]:
    """Enqueue every grid point that needs a trial; call under the grid lock.

    ``initial`` (a fresh ``sweep`` command) also re-enqueues points lost more than
    ``max_retries`` times, and with ``rerun`` / ``retry_failed`` finished or failed points.
    """
    trials = by_point(study)
    done = []
    for p in grid:
        ts = trials.get(p, [])
        decision = _decide(ts, initial, rerun, retry_failed, max_retries)
        if decision is None:
            continue
        resume, why = decision
        attrs = {"variant": p.variant, "seed": p.seed, "run_dir": p.run_dir}
        attrs.update(attempt=len(ts) + 1, resume=resume, why=why)
        study.enqueue_trial({"variant": p.variant, "seed": p.seed}, user_attrs=attrs)
        done.append((p, why))
    return done


def needs_enqueue(study: optuna.Study, grid: list[Point], max_retries: int) -> bool:
    """Cheap check before taking the lock (re-checked under it)."""
    trials = by_point(study)
    return any(_decide(trials.get(p, []), False, False, False, max_retries) for p in grid)


def point_state(ts: list[FrozenTrial]) -> tuple[str, FrozenTrial | None]:
    """COMPLETE (latest) > RUNNING > WAITING > FAIL (latest) > MISSING."""
    for state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL):
        match = [t for t in ts if t.state == state]
        if match:
            return state.name, max(match, key=lambda t: t.number)
    return "MISSING", None


STATIC_KEYS = ("traversal", "pooling", "params", "flops")


def runs_row(exp_dir: Path, p: Point, ts: list[FrozenTrial], meta: dict) -> dict[str, Any]:
    """A grid point's row: state from the study, values from the trial's user attributes
    (set when it finished), then its folder's result.json (structured files, never logs)."""
    state, t = point_state(ts)
    attrs = dict(t.user_attrs) if t is not None else {}
    result = read_json(exp_dir / p.run_dir / "result.json") or {}
    if t is None and result.get("state") == "COMPLETE":
        state, attrs = "COMPLETE", result  # a folder whose study was removed
    row = {k: attrs.get(k) for k in RUNS_COLUMNS}
    for k in STATIC_KEYS:
        row[k] = row[k] if row[k] is not None else result.get(k)
    if state == "COMPLETE":
        for k in RUNS_COLUMNS:
            row[k] = row[k] if row[k] is not None else result.get(k)
        row["fail_reason"] = None
    elif state == "FAIL":
        row["fail_reason"] = attrs.get("fail_reason") or LOST_REASON
    row.update(meta, variant=p.variant, seed=p.seed, state=state, run_dir=p.run_dir)
    return row


def runs_rows(exp_dir: Path, study: optuna.Study | None, grid: list[Point], meta: dict) -> list:
    """One row per grid point (see ``runs_row``)."""
    trials = by_point(study) if study is not None else {}
    return [runs_row(exp_dir, p, trials.get(p, []), meta) for p in grid]


def write_runs_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RUNS_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in RUNS_COLUMNS})
    atomic_write(path, buf.getvalue())


# Keys whose difference from the paper protocol does not change what is measured.
NOT_DEVIATIONS = {
    "train.seed", "train.device", "train.ckpt_every", "train.eval_every",
    "train.inject_nan_at_step", "data.root", "data.cache", "data.cache_dir",
    "data.num_workers", "data.strict", "train.precision", "train.compile",
}  # fmt: skip


# Keys of the built-in synthetic dataset only: the paper's ImageNet-100 has no such setting.
SYNTHETIC_ONLY = {"data.train_samples", "data.val_samples"}


def _size_text(size: Any) -> str:
    try:
        import vil

        dim, depth = vil.SIZES[size]
        return f"{size} ({dim}/{depth})"
    except (ImportError, KeyError):
        return str(size)


def deviations(cfg: dict, paper: dict, axis: str, runtime: dict, paper_runtime: dict) -> list[str]:
    """How ``cfg`` differs from the paper protocol, derived key by key (not hand-written).

    ``runtime``/``paper_runtime``: the resolved precision and compile of this sweep's device
    and of the paper's (CUDA), since "auto" resolves differently on a CPU.
    """
    from ablations.config import flatten

    ours, ref = flatten(cfg), flatten(paper)
    out = []
    for key in ref:
        if key in NOT_DEVIATIONS or key == f"model.{axis}" or ours.get(key) == ref[key]:
            continue
        if key in SYNTHETIC_ONLY:  # no paper value: the paper's data has no such knob
            if ours.get("data.dataset") == "synthetic":
                out.append(f"{key}: {ours.get(key)} (synthetic data only)")
            continue
        a, b = ours.get(key), ref[key]
        if key == "model.size":
            a, b = _size_text(a), _size_text(b)
        out.append(f"{key}: {a} (paper: {b})")
    for key, ref_value in paper_runtime.items():
        if runtime.get(key) != ref_value:
            out.append(f"{key}: {runtime.get(key)} on {runtime.get('device')} (paper: {ref_value})")
    return out
