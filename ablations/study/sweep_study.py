"""The sweep's study: one Optuna study per experiment folder whose trials are grid points.

Everything the sweep asks of Optuna goes through here, with plain values in and out (the
sweep passes a ``Place`` and point -> fingerprint maps; it never sees an Optuna type beyond
the opaque trial handle it hands back).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ablations.schema.points import Point
from ablations.study import queue, storage

log = logging.getLogger("vil-ablate.sweep")
Study = optuna.Study  # the handles the sweep passes around (never inspected there)
Trial = optuna.Trial


@dataclass(frozen=True)
class Place:
    """Where a study lives: its name, the storage (None = the folder's journal) and timing."""

    name: str
    storage: str | None
    exp_dir: Path
    heartbeat_s: float = 10
    grace_s: float = 60


def open_study(place: Place) -> tuple[Study, storage.GridLock]:
    """The experiment's study (created on first use) and its grid lock."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = storage.open_storage(place.storage, place.exp_dir)
    study = optuna.create_study(
        study_name=place.name, storage=st, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(seed=0),  # never consulted: every point is fixed
    )  # fmt: skip
    return study, storage.GridLock(place.storage, place.exp_dir, place.name, st)


def load_study(place: Place) -> Study | None:
    """The existing study, or None when the experiment has not been swept."""
    if not storage.journal_exists(place.storage, place.exp_dir):
        return None
    try:
        st = storage.open_storage(place.storage, place.exp_dir)
        return optuna.load_study(study_name=place.name, storage=st)
    except KeyError:
        return None


def enqueue(
    study: Study,
    lock: storage.GridLock,
    fingerprints: dict[Point, str],
    *,
    initial: bool,
    rerun: bool = False,
    retry_failed: bool = False,
    max_retries: int = 3,
) -> list[tuple[Point, str]]:
    """Enqueue what the grid needs, under the lock (skipped when nothing is needed)."""
    if not initial and not queue.needs_enqueue(study, fingerprints, max_retries):
        return []
    with lock.hold():
        added = queue.reconcile(study, fingerprints, initial=initial, rerun=rerun,
                                retry_failed=retry_failed, max_retries=max_retries)  # fmt: skip
    for p, why in added:
        log.info("enqueued %s (%s)", p.name, why)
    return added


def grid_counts(study: Study, fingerprints: dict[Point, str], grid: list[Point]) -> dict[str, int]:
    """Number of the grid's points per scheduling state; a point stopped by Ctrl-C (told
    FAIL, kind "interrupted", resumed next time) counts as INTERRUPTED, not done."""
    trials = queue.by_point(study, fingerprints)
    out: dict[str, int] = {}
    for p in grid:
        state, latest = queue.point_state(trials.get(p, []))
        if state == "FAIL" and latest is not None and queue.fail_kind(latest) == "interrupted":
            state = "INTERRUPTED"
        out[state] = out.get(state, 0) + 1
    return out


def work_left(study: Study, fingerprints: dict[Point, str]) -> bool:
    """Whether a trial of the current grid is still WAITING or RUNNING (anywhere)."""
    live = (TrialState.WAITING, TrialState.RUNNING)
    for t in study.get_trials(False, states=live):
        p = queue.point_of(t)
        if p in fingerprints and t.user_attrs.get("fingerprint") == fingerprints[p]:
            return True
    return False


def next_trial(
    study: Study, lock: storage.GridLock, grace_s: float, fingerprints: dict[Point, str]
) -> Trial | None:
    """Fail stale trials, then claim the oldest WAITING trial of this command's grid (point
    -> fingerprint; None when none waits). Other points' trials are left to the commands
    that name them: a worker cannot train a point it has no config for."""
    for number in storage.fail_stale_trials(study, grace_s):
        log.warning("trial %d lost its worker; it will be retried", number)

    def mine(t: optuna.trial.FrozenTrial) -> bool:
        p = queue.point_of(t)
        return p in fingerprints and t.user_attrs.get("fingerprint") == fingerprints[p]

    return storage.claim_waiting(study, lock, mine)


def trial_spec(trial: Trial) -> dict:
    """What a worker needs of a claimed trial: point, number, resume flag, attempt."""
    a = trial.user_attrs
    return {"variant": a["variant"], "seed": int(a["seed"]), "number": trial.number,
            "resume": bool(a.get("resume")), "attempt": a.get("attempt", 1)}  # fmt: skip


def heartbeat(trial: Trial, interval_s: float) -> storage.Heartbeat:
    """A context manager beating for ``trial`` while it trains."""
    return storage.Heartbeat(trial, interval_s)


def tell(
    study: Study, trial: Trial, top1: float | None, kind: str | None, reason: str | None
) -> str:
    """COMPLETE with ``top1`` (kind None) or FAIL with the kind and reason; returns
    'complete', 'fail' or 'interrupted'."""
    try:
        if kind is None:
            study.tell(trial, float(top1))
            return "complete"
        trial.set_user_attr("fail_kind", kind)
        trial.set_user_attr("fail_reason", (reason or kind)[:500])
        study.tell(trial, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was already finished by another worker (stale?)", trial.number)
    return "interrupted" if kind == "interrupted" else "fail"


def live_states(place: Place) -> dict[tuple[str, int], tuple[str, str, str]]:
    """(variant, seed) -> (state, fail kind, reason) of each point's latest trial (none: {})."""
    return queue.live_states(load_study(place))
