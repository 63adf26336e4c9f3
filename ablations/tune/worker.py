"""A tune worker: per variant, ask the variant's study for trials (up to the budget, in
total over all workers), train each on the tuning split, report the per-epoch tuning top-1
to the pruner, tell the study. Every trial writes a normal run record in
``tune/<variant>/t<number>/`` (state PRUNED for pruned ones).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ablations.config import RunConfig, apply, dotted
from ablations.sweep import storage
from ablations.sweep.grid import Point
from ablations.train import Interrupted, train
from ablations.tune import space
from ablations.tune.study import counted, make_pruner, open_tune_study, seed_sampler

log = logging.getLogger("vil-ablate.tune")


class Pruned(RuntimeError):
    """Raised at an epoch boundary when the pruner stops the trial; the record says PRUNED."""

    run_state = "PRUNED"


@dataclass
class Job:
    """What every tune worker needs: the resolved sweep and the budget."""

    sweep: Any  # ablations.sweep.Sweep of the variants (seed: the experiment's first)
    trials: int  # per variant, in total

    @property
    def seed(self) -> int:
        """Tune trials train at the experiment's first seed (whatever --seeds a sweep uses)."""
        return self.sweep.exp.seeds[0]

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(p.variant for p in self.sweep.grid))

    def base(self, variant: str) -> RunConfig:
        return self.sweep.variant_config(variant, self.seed)

    def trial_config(self, variant: str, params: dict[str, float]) -> RunConfig:
        """The variant's config with ``params`` (the one layering), on the tuning split and
        the tune budget. Warm-up keeps its share of training, every epoch is evaluated (the
        pruner needs it; the tuning split is small)."""
        cfg = self.sweep.variant_config(variant, self.seed, dotted(params))
        epochs = space.budget_epochs(self.sweep.exp.tune, cfg.train.epochs)
        warmup = cfg.train.warmup_epochs * epochs / max(cfg.train.epochs, 1)
        layer = {"data": {"split": "tune"},
                 "train": {"epochs": epochs, "warmup_epochs": warmup, "eval_every": 1}}  # fmt: skip
        return apply(cfg, layer, f"{self.sweep.exp.name}/{variant} (tune)")

    def setting(self, variant: str) -> dict[str, Any]:
        """The tune setting of a variant: its trial config without the searched keys, plus
        the search space (resolved ranges), start points, pruner and sampler seed."""
        from ablations.config import science

        spec = self.sweep.exp.tune
        sci = science(self.trial_config(variant, {}))
        out = {k: v for k, v in sci.items() if k not in spec.keys}
        bounds = self.bounds(variant)
        out |= {f"tune.space.{k}": list(b) for k, b in bounds.items()}
        out["tune.start"] = space.start_points(spec, self.base(variant), bounds, variant)
        return out | {"tune.pruner": spec.pruner, "tune.seed": spec.seed}

    def fingerprint(self, variant: str) -> str:
        from ablations.runs import fingerprint

        return fingerprint(self.setting(variant))

    def bounds(self, variant: str) -> dict[str, tuple[float, float, bool]]:
        return space.ranges(self.sweep.exp.tune, self.base(variant), self.sweep.catalog.source)


class Reporter:
    """Progress that forwards each epoch's tuning top-1 to the trial and prunes on request."""

    def __init__(self, trial: optuna.Trial, progress: Any) -> None:
        self.trial, self.progress = trial, progress

    def __getattr__(self, name: str) -> Any:  # start/step/log: the real progress (or no-op)
        return getattr(self.progress, name) if self.progress else (lambda *a, **k: None)

    def epoch(self, row: dict[str, Any]) -> None:
        if self.progress:
            self.progress.epoch(row)
        if row.get("val_top1") is None:
            return
        self.trial.report(float(row["val_top1"]), int(row["epoch"]))
        if self.trial.should_prune():
            raise Pruned(f"pruned at epoch {row['epoch']}: tuning top-1 {row['val_top1']:.2f}")


def _next_trial(job: Job, study: optuna.Study, lock: storage.GridLock) -> optuna.Trial | None:
    """A WAITING trial (a start point), else a new one while the budget allows, else None."""
    with lock.hold():
        trial = storage.claim_waiting(study)
        if trial is None and counted(study) < job.trials:
            trial = study.ask()
    return trial


def check_setting(job: Job, study: optuna.Study, variant: str) -> None:
    """A study holds the trials of one tune setting: stamp it once, refuse another one."""
    from ablations.tune.study import TuneError

    fp, old = job.fingerprint(variant), study.user_attrs.get("fingerprint")
    if old is None:
        study.set_user_attr("fingerprint", fp)
        study.set_user_attr("setting", json.loads(json.dumps(job.setting(variant), default=str)))
    elif old != fp:
        raise TuneError(f"{study.study_name}: its trials were made with another config or "
                        f"search (fingerprint {old}, now {fp}{setting_changes(job, study, variant)}"
                        "); use another --results folder or --storage")  # fmt: skip


def setting_changes(job: Job, study: optuna.Study, variant: str) -> str:
    """``: tune.space.train.lr [..] -> [..], ...`` where the study recorded its setting."""
    from ablations.config import changes

    old = study.user_attrs.get("setting")
    if not isinstance(old, dict):
        return ""
    new = json.loads(json.dumps(job.setting(variant), default=str))
    diff = changes(old, new)
    return f": {', '.join(diff[:6])}" if diff else ""


def enqueue_start(job: Job, study: optuna.Study, lock: storage.GridLock, variant: str) -> None:
    """The tune block's start points, once per study (before any other trial)."""
    bounds = job.bounds(variant)
    points = space.start_points(job.sweep.exp.tune, job.base(variant), bounds, variant)
    with lock.hold():
        if study.get_trials(deepcopy=False):
            return
        for point in points[: job.trials]:
            study.enqueue_trial(point)


def run_trial(job: Job, variant: str, study: optuna.Study, trial: optuna.Trial,
              stop: threading.Event, progress: Any) -> str:  # fmt: skip
    """Train one tune trial; 'complete', 'pruned', 'fail' or 'interrupted'."""
    seed_sampler(study, job.sweep.exp.tune.seed, trial.number)
    bounds = job.bounds(variant)
    params = {k: trial.suggest_float(k, lo, hi, log=lg) for k, (lo, hi, lg) in bounds.items()}
    rel = trial_dir(variant, trial.number)
    trial.set_user_attr("run_dir", rel)
    trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
    run_dir = job.sweep.exp_dir / rel
    record = job.sweep.record_for(Point(variant, job.seed))
    record.run_dir, record.trial, record.tuned = rel, trial.number, params
    record.tune_ranges = {k: list(b) for k, b in bounds.items()}
    record.tune_trials = record.tune_pruned = record.tune_best_top1 = None
    cfg = job.trial_config(variant, params)
    hb = job.sweep.opts.heartbeat_s
    with storage.Heartbeat(study._storage, trial._trial_id, run_dir, hb):
        outcome, value = _train(cfg, run_dir, trial, record, stop, progress)
    (run_dir / "checkpoint.pt").unlink(missing_ok=True)  # tune trials are never resumed
    try:
        if outcome == "complete":
            study.tell(trial, value)
        elif outcome == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        else:  # a failed (diverged) trial counts, an interrupted one is replaced
            trial.set_user_attr("fail_kind", "error" if outcome == "fail" else outcome)
            study.tell(trial, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was already finished by another worker (stale?)", trial.number)
    return outcome


def _train(cfg: RunConfig, run_dir: Path, trial: optuna.Trial, record: Any,
           stop: threading.Event, progress: Any) -> tuple[str, float | None]:  # fmt: skip
    """Train the trial's config; (outcome, tuning top-1 when complete)."""
    try:
        rec = train(cfg, run_dir, Reporter(trial, progress), should_stop=stop.is_set,
                    resume=False, record=record)  # fmt: skip
        if rec.state == "TRUNCATED":  # a budget cut it short: its top-1 is not the trial's
            log.error("%s %s", run_dir.name, rec.fail_reason)
            return "fail", None
        return "complete", float(rec.top1)
    except Pruned:
        _keep_last_value(run_dir, trial)
        return "pruned", None
    except (Interrupted, KeyboardInterrupt):
        stop.set()
        return "interrupted", None
    except Exception as e:  # the trial fails (a diverging lr is a result), tuning goes on
        log.error("%s failed: %s: %s", run_dir.name, type(e).__name__, e)
        return "fail", None


def _keep_last_value(run_dir: Path, trial: optuna.Trial) -> None:
    """A pruned trial's record keeps its last reported tuning top-1 (the sensitivity plot)
    and the epochs it completed (it stopped at that epoch's boundary)."""
    from ablations import runs

    rec = runs.read(run_dir)
    values = trial.storage.get_trial(trial._trial_id).intermediate_values
    if rec is not None and values:
        rec.top1, rec.epochs_done = float(values[max(values)]), int(max(values))
        rec.write(run_dir)


def run_worker(job: Job, stop: threading.Event, progress: Any = None) -> str:
    """Work on every variant's study until each holds its budget; 'done' or 'interrupted'.
    Idle while others' trials run (one of them may be lost and need replacing)."""
    s = job.sweep
    studies, locks = {}, {}
    for v in job.variants:
        epochs = space.budget_epochs(s.exp.tune, job.base(v).train.epochs)
        studies[v] = open_tune_study(s, v, make_pruner(s.exp.tune.pruner, epochs))
        locks[v] = storage.GridLock(s.opts.storage, s.exp_dir, studies[v].study_name)
        check_setting(job, studies[v], v)
        enqueue_start(job, studies[v], locks[v], v)
    try:
        while not stop.is_set():
            busy = False
            for v, study in studies.items():
                storage.fail_stale_trials(study, s.exp_dir, s.opts.grace_s)
                trial = _next_trial(job, study, locks[v])
                if trial is not None:
                    busy = True
                    if run_trial(job, v, study, trial, stop, progress) == "interrupted":
                        return "interrupted"
            if not busy:
                running = [
                    st.get_trials(False, states=(TrialState.RUNNING,)) for st in studies.values()
                ]
                if not any(running):
                    return "done"
                stop.wait(s.opts.poll_s)
        return "interrupted"
    finally:
        for lock in locks.values():
            lock.close()


def trial_dir(variant: str, number: int) -> str:
    """A tune trial's folder, relative to the experiment folder (report: ``tune/*/*``)."""
    return f"tune/{variant}/t{number}"
