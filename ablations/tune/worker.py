"""A tune worker: per variant, ask the variant's study for trials (up to the budget, in
total over all workers), train each on the tuning split, report the per-epoch tuning top-1
to the pruner, tell the study. Every trial writes a normal run record in
``tune/<variant>/t<number>/`` (state PRUNED for pruned ones).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablations.schema import record as runs
from ablations.schema import tune_space as space
from ablations.schema.config import RunConfig, dotted, science
from ablations.schema.points import Point
from ablations.study import tune as studies
from ablations.study.storage import Heartbeat
from ablations.study.sweep_study import Study, Trial
from ablations.sweep.spec import Sweep, SweepOptions, resolve
from ablations.train import Interrupted, train

log = logging.getLogger("vil-ablate.tune")


class Pruned(RuntimeError):
    """Raised at an epoch boundary when the pruner stops the trial; the record says PRUNED."""

    run_state = "PRUNED"


@dataclass
class Job:
    """What every tune worker needs: the resolved sweep and the budget."""

    sweep: Sweep  # the variants' sweep (seed: the experiment's first)
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
        final = (f"{self.sweep.exp.name}/{variant} (tune)", layer)
        return self.sweep.variant_config(variant, self.seed, dotted(params), final)

    def fingerprint(self, variant: str) -> str:
        """The variant's trial config without the searched keys."""
        sci = science(self.trial_config(variant, {}))
        return runs.fingerprint({k: v for k, v in sci.items() if k not in self.sweep.exp.tune.keys})

    def setting(self, variant: str) -> dict[str, Any]:
        """What decides a variant's tune trials (its study's stamp): the config's fingerprint,
        the search space (resolved ranges and start points), budget, pruner and sampler seed."""
        t = self.sweep.exp.tune
        bounds = self.bounds(variant)
        start = space.start_points(t, self.base(variant), bounds, variant)
        return {"fingerprint": self.fingerprint(variant),
                "space": {k: list(b) for k, b in bounds.items()},
                "start": [dict(p) for p in start], "budget_epochs": self.budget_epochs(variant),
                "pruner": t.pruner, "sampler_seed": t.seed}  # fmt: skip

    def budget_epochs(self, variant: str) -> int:
        return space.budget_epochs(self.sweep.exp.tune, self.base(variant).train.epochs)

    def bounds(self, variant: str) -> dict[str, tuple[float, float, bool]]:
        return space.ranges(self.sweep.exp.tune, self.base(variant), self.sweep.catalog.source)


class Reporter:
    """Progress that forwards each epoch's tuning top-1 to the trial and prunes on request."""

    def __init__(self, trial: Trial, progress: Any, label: str = "") -> None:
        self.trial, self.progress, self.label = trial, progress, label
        self.last: tuple[int, float] | None = None  # (epoch, tuning top-1) last reported

    def __getattr__(self, name: str) -> Any:  # step/log: the real progress (or no-op)
        return getattr(self.progress, name) if self.progress else (lambda *a, **k: None)

    def start(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Lines name the variant too (``bi/t3``): every variant has a ``t0``."""
        if self.progress:
            self.progress.start(self.label or name, *args, **kwargs)

    def epoch(self, row: dict[str, Any]) -> None:
        if self.progress:
            self.progress.epoch(row)
        if row.get("val_top1") is None:
            return
        self.last = (int(row["epoch"]), float(row["val_top1"]))
        if studies.report(self.trial, self.last[1], self.last[0]):
            raise Pruned(f"pruned at epoch {row['epoch']}: tuning top-1 {row['val_top1']:.2f}")


def run_trial(job: Job, variant: str, study: Study, trial: Trial,
              stop: threading.Event, progress: Any) -> str:  # fmt: skip
    """Train one tune trial; 'complete', 'pruned', 'fail' or 'interrupted'."""
    bounds = job.bounds(variant)
    params = studies.propose(study, trial, job.sweep.exp.tune.seed, bounds)
    rel = trial_dir(variant, trial.number)
    studies.set_attr(trial, "run_dir", rel)
    run_dir = job.sweep.exp_dir / rel
    record = job.sweep.record_for(Point(variant, job.seed))
    record.run_dir, record.trial, record.tuned = rel, trial.number, params
    record.tune_ranges = {k: list(b) for k, b in bounds.items()}
    record.tune_trials = record.tune_pruned = record.tune_best_top1 = None
    cfg = job.trial_config(variant, params)
    with Heartbeat(trial, job.sweep.opts.heartbeat_s):
        outcome, value = _train(cfg, run_dir, trial, record, stop, progress)
    (run_dir / "checkpoint.pt").unlink(missing_ok=True)  # tune trials are never resumed
    studies.tell(study, trial, outcome, value)
    return outcome


def _train(cfg: RunConfig, run_dir: Path, trial: Trial, record: Any,
           stop: threading.Event, progress: Any) -> tuple[str, float | None]:  # fmt: skip
    """Train the trial's config; (outcome, tuning top-1 when complete)."""
    reporter = Reporter(trial, progress, f"{run_dir.parent.name}/{run_dir.name}")
    try:
        rec = train(cfg, run_dir, reporter, should_stop=stop.is_set, resume=False,
                    record=record)  # fmt: skip
        if rec.state == "TRUNCATED":  # a budget cut it short: its top-1 is not the trial's
            log.error("%s %s", run_dir.name, rec.fail_reason)
            return "fail", None
        return "complete", float(rec.top1)
    except Pruned:
        _keep_last_value(run_dir, reporter.last)
        return "pruned", None
    except (Interrupted, KeyboardInterrupt):
        stop.set()
        return "interrupted", None
    except Exception as e:  # the trial fails (a diverging lr is a result), tuning goes on
        log.error("%s/%s failed: %s: %s", run_dir.parent.name, run_dir.name, type(e).__name__, e)
        return "fail", None


def _keep_last_value(run_dir: Path, last: tuple[int, float] | None) -> None:
    """A pruned trial's record keeps its last reported tuning top-1 (the sensitivity plot)
    and the epochs it completed (it stopped at that epoch's boundary)."""
    rec = runs.read(run_dir)
    if rec is not None and last is not None:
        rec.epochs_done, rec.top1 = last
        rec.write(run_dir)


def run_worker(job: Job, stop: threading.Event, progress: Any = None) -> str:
    """Work on every variant's study until each holds its budget; 'done' or 'interrupted'.
    Idle while others' trials run (one of them may be lost and need replacing)."""
    s = job.sweep
    opened = {}
    for v in job.variants:
        t = s.exp.tune
        opened[v] = studies.open_tune_study(s.place, v, t.pruner, job.budget_epochs(v), t.seed)
        study, lock = opened[v]
        studies.stamp(study, job.setting(v))
        start = space.start_points(t, job.base(v), job.bounds(v), v)
        studies.enqueue_start(study, lock, start[: job.trials])
    try:
        while not stop.is_set():
            busy = False
            for v, (study, lock) in opened.items():
                trial = studies.next_trial(study, lock, job.trials, s.opts.grace_s)
                if trial is not None:
                    busy = True
                    if run_trial(job, v, study, trial, stop, progress) == "interrupted":
                        return "interrupted"
            if not busy:
                if not studies.any_running([st for st, _ in opened.values()]):
                    return "done"
                stop.wait(s.opts.poll_s)
        return "interrupted"
    finally:
        for _, lock in opened.values():
            lock.close()


def load_tuned(sweep: Sweep) -> dict[str, studies.Best]:
    """Each variant's best tune values (sweep --tuned), from studies of today's setting."""
    job = Job(sweep, 0)
    settings = {v: job.setting(v) for v in job.variants}
    return studies.load_best(sweep.place, settings, sweep.exp.name)


def resolve_tuned(opts: SweepOptions, check_data: bool = True) -> Sweep:
    """``resolve``, and with ``opts.tuned`` again with each variant's best tune values."""
    s = resolve(opts, check_data)
    if not opts.tuned:
        return s
    return resolve(opts, check_data, tuned=load_tuned(s))


def trial_dir(variant: str, number: int) -> str:
    """A tune trial's folder, relative to the experiment folder (report: ``tune/*/*``)."""
    return f"tune/{variant}/t{number}"
