"""A sweep worker: claim WAITING trials of the experiment's study, train each grid point in
``runs/<variant>-s<seed>``, tell the study. Any number of workers, on any machines, share one
study; each grid point is trained once (see queue.py). Under ``torchrun`` rank 0 talks to
Optuna and broadcasts the trial; all ranks train it (DDP).
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from typing import Any

import optuna
import torch.distributed as dist
from optuna.trial import TrialState

from ablations.sweep import queue, storage
from ablations.sweep.grid import Point
from ablations.sweep.spec import Sweep
from ablations.train import Interrupted, train
from ablations.train.records import read_json

log = logging.getLogger("vil-ablate.sweep")


def open_study(sweep: Sweep) -> tuple[optuna.Study, storage.GridLock]:
    """The experiment's study (created on first use) and its grid lock."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = storage.open_storage(sweep.opts.storage, sweep.exp_dir, sweep.opts.heartbeat_s,
                              sweep.opts.grace_s, _on_stale)  # fmt: skip
    study = optuna.create_study(
        study_name=sweep.study_name, storage=st, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(seed=0),  # never consulted: every point is fixed
    )  # fmt: skip
    return study, storage.GridLock(sweep.opts.storage, sweep.exp_dir, sweep.study_name)


def load_study(sweep: Sweep) -> optuna.Study | None:
    """The existing study, or None when the experiment has not been swept."""
    if not sweep.opts.storage and not (sweep.exp_dir / "optuna.journal").exists():
        return None
    try:
        st = storage.open_storage(sweep.opts.storage, sweep.exp_dir)
        return optuna.load_study(study_name=sweep.study_name, storage=st)
    except KeyError:
        return None


def _on_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    log.warning("trial %d (%s) lost its worker; it will be retried", trial.number,
                trial.user_attrs.get("run_dir"))  # fmt: skip


def enqueue(sweep: Sweep, study: optuna.Study, lock: storage.GridLock, initial: bool) -> list:
    """Enqueue what the grid needs, under the lock (skipped when nothing is needed)."""
    o, fps = sweep.opts, sweep.fingerprints
    if not initial and not queue.needs_enqueue(study, fps, o.max_retries):
        return []
    with lock.hold():
        added = queue.reconcile(
            study, fps, initial=initial, rerun=initial and o.rerun,
            retry_failed=initial and o.retry_failed, max_retries=o.max_retries,
        )  # fmt: skip
    for p, why in added:
        log.info("enqueued %s (%s)", p.name, why)
    return added


def grid_counts(sweep: Sweep, study: optuna.Study) -> dict[str, int]:
    """Number of this command's grid points per scheduling state."""
    trials = queue.by_point(study, sweep.fingerprints)
    out: dict[str, int] = {}
    for p in sweep.grid:
        state, _ = queue.point_state(trials.get(p, []))
        out[state] = out.get(state, 0) + 1
    return out


def _work_left(sweep: Sweep, study: optuna.Study) -> bool:
    fps = sweep.fingerprints
    live = (TrialState.WAITING, TrialState.RUNNING)
    for t in study.get_trials(False, states=live):
        p = queue.point_of(t)
        if p in fps and t.user_attrs.get("fingerprint") == fps[p]:
            return True
    return False


def run_worker(sweep: Sweep, stop: threading.Event, progress: Any, initial: bool = True) -> str:
    """Claim and train trials until none is WAITING or RUNNING; 'done' or 'interrupted'.

    Idle workers keep polling while other workers' trials run: if one of those workers dies,
    its trial goes stale and is retried here.
    """
    if _rank() != 0:
        return _follow(sweep, stop, progress)
    study, lock = open_study(sweep)
    try:
        enqueue(sweep, study, lock, initial=initial)
        while not stop.is_set():
            storage.fail_stale_trials(study, sweep.exp_dir, sweep.opts.grace_s)
            enqueue(sweep, study, lock, initial=False)
            _show_counts(sweep, study, progress)
            trial = storage.claim_waiting(study)
            if trial is None:
                if not _work_left(sweep, study):
                    break
                stop.wait(sweep.opts.poll_s)
                continue
            if run_trial(sweep, study, trial, stop, progress) == "interrupted":
                break
        _show_counts(sweep, study, progress)
        return "interrupted" if stop.is_set() else "done"
    finally:
        _broadcast(None)  # DDP followers wait for this to leave
        lock.close()


def _show_counts(sweep: Sweep, study: optuna.Study, progress: Any) -> None:
    if progress is not None:
        c = grid_counts(sweep, study)
        progress.set_done(c.get("COMPLETE", 0) + c.get("FAIL", 0), len(sweep.grid))


def run_trial(sweep: Sweep, study: optuna.Study, trial: optuna.Trial, stop: threading.Event,
              progress: Any) -> str:  # fmt: skip
    """Train one claimed trial and tell the study; returns 'complete', 'fail' or 'interrupted'."""
    attrs = trial.user_attrs
    spec = {"variant": attrs["variant"], "seed": int(attrs["seed"]), "number": trial.number,
            "resume": bool(attrs.get("resume")), "attempt": attrs.get("attempt", 1)}  # fmt: skip
    trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
    _broadcast(spec)
    run_dir = sweep.exp_dir / Point(spec["variant"], spec["seed"]).run_dir
    with storage.Heartbeat(study._storage, trial._trial_id, run_dir, sweep.opts.heartbeat_s):
        top1, kind, reason = execute(sweep, spec, stop, progress)
    return _tell(study, trial, top1, kind, reason)


def execute(
    sweep: Sweep, spec: dict, stop: threading.Event, progress: Any
) -> tuple[float | None, str | None, str | None]:
    """Train one grid point on this process (every DDP rank calls it): (top1, kind, reason)."""
    p = Point(spec["variant"], spec["seed"])
    run_dir = sweep.exp_dir / p.run_dir
    if not spec["resume"] and _rank() == 0:
        (run_dir / "checkpoint.pt").unlink(missing_ok=True)  # a fresh attempt starts over
    if dist.is_initialized():
        dist.barrier()
    record = sweep.record_for(p)
    record.trial, record.attempt = spec["number"], spec["attempt"]
    try:
        rec = train(sweep.config_for(p), run_dir, progress, should_stop=stop.is_set,
                    record=record)  # fmt: skip
        if rec.state == "TRUNCATED":  # not a result: the next sweep retrains it (queue.py)
            return None, "truncated", rec.fail_reason
        return rec.top1, None, None
    except (Interrupted, KeyboardInterrupt):
        stop.set()
        return None, "interrupted", "interrupted"
    except Exception as e:  # the trial fails, the sweep goes on
        log.error("%s failed: %s: %s", p.name, type(e).__name__, e)
        saved = read_json(run_dir / "result.json") or {}
        return None, "error", saved.get("fail_reason") or f"{type(e).__name__}: {e}"


def _tell(study: optuna.Study, trial: optuna.Trial, top1: float | None, kind: str | None,
          reason: str | None) -> str:  # fmt: skip
    try:
        if kind is None:
            study.tell(trial, float(top1))
            return "complete"
        trial.set_user_attr("fail_kind", kind)
        trial.set_user_attr("fail_reason", (reason or kind)[:500])
        study.tell(trial, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was already finished by another worker (stale?)", trial.number)
    return "interrupted" if kind == "interrupted" else ("complete" if kind is None else "fail")


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _broadcast(spec: dict | None) -> dict | None:
    """Rank 0 sends the next trial (None = stop) to the other DDP ranks."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return spec
    box = [spec]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _follow(sweep: Sweep, stop: threading.Event, progress: Any) -> str:
    """DDP ranks > 0: train whatever rank 0 broadcasts, until it sends None (always, at exit)."""
    outcome = "done"
    while True:
        spec = _broadcast(None)
        if spec is None:
            return outcome
        _, kind, _ = execute(sweep, copy.deepcopy(spec), stop, None)
        outcome = "interrupted" if kind == "interrupted" else outcome
