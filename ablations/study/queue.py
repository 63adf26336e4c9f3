"""The sweep's work queue on an Optuna study: which grid points need a trial, and their state.

A trial carries only what scheduling needs, as user attributes set at enqueue time:
``variant``, ``seed``, ``fingerprint`` (of the point's science config), ``run_dir``,
``attempt``, ``resume``, and on failure ``fail_kind``. Results live in the run record
(ablations/schema/record.py), never here. A point is done when a COMPLETE trial with the point's
current fingerprint exists; ``reconcile`` enqueues what is missing (under the grid lock),
including retries of interrupted or lost trials, which resume from the trial's checkpoint.
A run its budget stopped early (TRUNCATED, told as FAIL kind ``truncated``) is never done: the
next ``sweep`` command resumes it from the checkpoint the budget stop wrote (the budget keys are
not science), so a larger budget goes on where the last one stopped and nothing is trained twice.
"""

from __future__ import annotations

from collections import defaultdict

import optuna
from optuna.trial import FrozenTrial, TrialState

from ablations.schema.points import Point

RETRYABLE = ("interrupted", "worker_lost")  # fail kinds a retry resumes from the checkpoint
TRUNCATED = "truncated"  # fail kind of a run stopped by train.time_limit_s / max_steps
LOST_REASON = "worker lost (no heartbeat); retried from its last checkpoint"


def point_of(t: FrozenTrial) -> Point | None:
    v, s = t.user_attrs.get("variant"), t.user_attrs.get("seed")
    return Point(v, int(s)) if v is not None and s is not None else None


def by_point(study: optuna.Study, fingerprints: dict[Point, str] | None = None) -> dict:
    """Trials per point; with ``fingerprints``, only trials of the point's current config."""
    out: dict[Point, list[FrozenTrial]] = defaultdict(list)
    for t in study.get_trials(deepcopy=False):
        p = point_of(t)
        if p is None:
            continue
        if fingerprints is not None and t.user_attrs.get("fingerprint") != fingerprints.get(p):
            continue  # a trial of an earlier config of this point: history, not its state
        out[p].append(t)
    return out


def fail_kind(t: FrozenTrial) -> str:
    """FAIL trials without a recorded kind were failed by the heartbeat check."""
    return t.user_attrs.get("fail_kind", "worker_lost")


def _decide(
    ts: list[FrozenTrial], initial: bool, rerun: bool, retry_failed: bool, max_retries: int
) -> tuple[bool, str] | None:
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
    if kind == TRUNCATED:  # stopped by its budget: never done; a new command resumes it
        return (True, "resume truncated run") if initial else None
    if kind in RETRYABLE:
        lost = sum(fail_kind(t) == "worker_lost" for t in ts if t.state == TrialState.FAIL)
        if initial or lost <= max_retries:
            return (True, f"retry after {kind}")
        return None
    return (False, "retry after failure") if initial and retry_failed else None


def reconcile(
    study: optuna.Study,
    grid: dict[Point, str],
    *,
    initial: bool = False,
    rerun: bool = False,
    retry_failed: bool = False,
    max_retries: int = 3,
) -> list[tuple[Point, str]]:
    """Enqueue every grid point (point -> fingerprint) that needs a trial; call under the
    grid lock. ``initial`` (a fresh ``sweep`` command) also re-enqueues points lost more than
    ``max_retries`` times, and with ``rerun`` / ``retry_failed`` finished or failed points.
    """
    trials = by_point(study, grid)
    done = []
    for p, fp in grid.items():
        ts = trials.get(p, [])
        decision = _decide(ts, initial, rerun, retry_failed, max_retries)
        if decision is None:
            continue
        resume, why = decision
        attrs = {"variant": p.variant, "seed": p.seed, "run_dir": p.run_dir, "fingerprint": fp}
        attrs.update(attempt=len(ts) + 1, resume=resume, why=why)
        study.enqueue_trial({"variant": p.variant, "seed": p.seed}, user_attrs=attrs)
        done.append((p, why))
    return done


def needs_enqueue(study: optuna.Study, grid: dict[Point, str], max_retries: int) -> bool:
    """Cheap check before taking the lock (re-checked under it)."""
    trials = by_point(study, grid)
    return any(_decide(trials.get(p, []), False, False, False, max_retries) for p in grid)


def point_state(ts: list[FrozenTrial]) -> tuple[str, FrozenTrial | None]:
    """COMPLETE (latest) > RUNNING > WAITING > FAIL (latest) > MISSING."""
    for state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL):
        match = [t for t in ts if t.state == state]
        if match:
            return state.name, max(match, key=lambda t: t.number)
    return "MISSING", None


def live_states(study: optuna.Study | None) -> dict[tuple[str, int], tuple[str, str, str]]:
    """(variant, seed) -> (state, fail kind, fail reason) of each point's latest trial, any
    config."""
    if study is None:
        return {}
    out: dict[tuple[str, int], tuple[str, str, str]] = {}
    latest: dict[tuple[str, int], int] = {}
    for t in study.get_trials(deepcopy=False):
        p = point_of(t)
        if p is None or latest.get((p.variant, p.seed), -1) > t.number:
            continue
        latest[(p.variant, p.seed)] = t.number
        failed = t.state == TrialState.FAIL
        kind = fail_kind(t) if failed else ""
        reason = str(t.user_attrs.get("fail_reason", "")) if failed else ""
        out[(p.variant, p.seed)] = (t.state.name, kind, reason)
    return out
