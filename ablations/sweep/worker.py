"""A sweep worker: claim WAITING trials of the experiment's study, train each grid point in
``runs/<variant>-s<seed>``, tell the study. Any number of workers, on any machines, share one
study; each grid point is trained once (see queue.py). Under ``torchrun`` rank 0 talks to
Optuna and broadcasts the trial; all ranks train it (DDP).
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

import torch.distributed as dist

from ablations.schema.files import read_json
from ablations.schema.points import Point
from ablations.study import sweep_study as study_api
from ablations.study.sweep_study import Study, Trial
from ablations.sweep.spec import Sweep
from ablations.train import Interrupted, train

log = logging.getLogger("vil-ablate.sweep")


def open_study(sweep: Sweep) -> tuple[Study, Any]:
    """The experiment's study (created on first use) and its grid lock."""
    return study_api.open_study(sweep.place)


def load_study(sweep: Sweep) -> Study | None:
    """The existing study, or None when the experiment has not been swept."""
    return study_api.load_study(sweep.place)


def enqueue(sweep: Sweep, study: Study, lock: Any, initial: bool) -> list:
    """Enqueue what this command's grid needs (a fresh command: with --rerun/--retry-failed)."""
    o = sweep.opts
    return study_api.enqueue(study, lock, sweep.fingerprints, initial=initial,
                             rerun=initial and o.rerun, retry_failed=initial and o.retry_failed,
                             max_retries=o.max_retries)  # fmt: skip


def grid_counts(sweep: Sweep, study: Study) -> dict[str, int]:
    """Number of this command's grid points per scheduling state (INTERRUPTED: stopped by
    Ctrl-C, resumed next time)."""
    return study_api.grid_counts(study, sweep.fingerprints, sweep.grid)


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
            trial = study_api.next_trial(study, lock, sweep.opts.grace_s, sweep.fingerprints)
            if trial is None:
                enqueue(sweep, study, lock, initial=False)  # lost trials come back here
                _show_counts(sweep, study, progress)
                if not study_api.work_left(study, sweep.fingerprints):
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


def _show_counts(sweep: Sweep, study: Study, progress: Any) -> None:
    if progress is not None:
        c = grid_counts(sweep, study)
        progress.set_done(c.get("COMPLETE", 0) + c.get("FAIL", 0), len(sweep.grid))


def run_trial(sweep: Sweep, study: Study, trial: Trial, stop: threading.Event,
              progress: Any) -> str:  # fmt: skip
    """Train one claimed trial and tell the study; returns 'complete', 'fail' or 'interrupted'."""
    spec = study_api.trial_spec(trial)
    _show_counts(sweep, study, progress)
    _broadcast(spec)
    with study_api.heartbeat(trial, sweep.opts.heartbeat_s):
        top1, kind, reason = execute(sweep, spec, stop, progress)
    return study_api.tell(study, trial, top1, kind, reason)


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
        if rec.state == "TRUNCATED":  # not a result: the next sweep resumes it (queue.py)
            return None, "truncated", rec.fail_reason
        return rec.top1, None, None
    except (Interrupted, KeyboardInterrupt):
        stop.set()
        return None, "interrupted", "interrupted"
    except Exception as e:  # the trial fails, the sweep goes on
        log.error("%s failed: %s: %s", p.name, type(e).__name__, e)
        saved = read_json(run_dir / "result.json") or {}
        return None, "error", saved.get("fail_reason") or f"{type(e).__name__}: {e}"


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
