"""Experiment trackers by name (``train.trackers``), fed from the training loop.

The loop hands over only what it already has on the host (the values of progress and
metrics.csv); a ``Fanout`` queues them to one background thread that calls every tracker.
A tracker that fails (disk full, server gone) is warned about once and dropped for the rest
of the run; one that hangs fills the queue (values are then dropped) and is left behind at
the end after ``CLOSE_TIMEOUT_S``: the trial never fails or waits on a tracker. The run
record (result.json) stays the source of every report number.

``trackers.json`` in the run folder keeps each tracker's run id and the last step it logged
per stream, so a resumed trial continues its tracker runs and logs no step twice.
"""

from __future__ import annotations

import importlib.util
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablations.schema.config import ConfigError, flatten
from ablations.schema.files import read_json, write_json
from ablations.schema.record import CSV_COLUMNS, RunRecord
from ablations.train.tracker_backends import MLflow, RunInfo, TensorBoard, Tracker, WandB
from vil.registry import Registry

STATE_FILE = "trackers.json"
INSTALL = "pip install vil-ablate[trackers]"
CLOSE_TIMEOUT_S = 60.0  # the most a trial's end waits for its trackers
QUEUE_SIZE = 10_000  # pending calls before values are dropped (a tracker that hangs)
ARTIFACTS = ("result.json", "config.yaml", "metrics.csv")  # logged at the end of every run
LOG = logging.getLogger("vil-ablate.trackers")


@dataclass(frozen=True)
class Entry:
    """A registered tracker: the package it needs, how to make one, and what to import
    before the timed loop (a library's import in the worker thread would hold the GIL
    during the first steps and lower the throughput the record states)."""

    module: str
    make: Callable[[], Tracker]
    preload: tuple[str, ...] = ()


TRACKERS: Registry[Entry] = Registry("tracker")


def register_tracker(name: str, entry: Entry) -> Entry:
    """Add a tracker (its name then works in ``train.trackers``)."""
    return TRACKERS.register(name, entry)


register_tracker("tensorboard", Entry("tensorboard", TensorBoard, ("torch.utils.tensorboard",)))
register_tracker("mlflow", Entry("mlflow", MLflow, ("mlflow",)))
register_tracker("wandb", Entry("wandb", WandB, ("wandb",)))


def check(names: Sequence[str], source: str = "train.trackers") -> None:
    """Raise ConfigError (one line) for an unknown or not installed tracker name."""
    for name in names:
        if name not in TRACKERS:
            valid = ", ".join(sorted(TRACKERS))
            raise ConfigError(f"{source}: unknown tracker {name!r}; valid: {valid}")
        if importlib.util.find_spec(TRACKERS[name].module) is None:
            raise ConfigError(
                f"{source}: tracker {name!r} needs the {TRACKERS[name].module} package, "
                f"which is not installed: {INSTALL}"
            )


def run_info(run_dir: Path, rec: RunRecord) -> RunInfo:
    """The run's identity from its record. A sweep's record names the folder relative to
    ``<results>/<protocol>/<experiment>``, which gives the results root; a bare ``train()``
    call keeps local stores beside its run folder."""
    run_dir = Path(run_dir)
    results = run_dir.parent
    if rec.run_dir and rec.protocol and rec.experiment:
        exp_dir = run_dir
        for _ in Path(rec.run_dir).parts:
            exp_dir = exp_dir.parent
        results = exp_dir.parent.parent
    return RunInfo(
        run_dir=run_dir, name=rec.run_dir or run_dir.name, protocol=rec.protocol or "local",
        experiment=rec.experiment or run_dir.parent.name, variant=rec.variant or run_dir.name,
        seed=rec.seed, fingerprint=rec.fingerprint, results=results,
    )  # fmt: skip


def params(rec: RunRecord) -> dict[str, Any]:
    """What every tracker records once per run: the flattened config and the identity."""
    ident = {"fingerprint": rec.fingerprint, "variant": rec.variant, "seed": rec.seed,
             "experiment": rec.experiment, "protocol": rec.protocol}  # fmt: skip
    return {**flatten(rec.config or {}), **ident}


def step_metrics(loss: float, lr: float, img_per_s: float) -> dict[str, float]:
    """Per read of the loss (every train.log_every steps): the progress bar's values."""
    return {"train/loss": loss, "train/lr": lr, "train/img_per_s": img_per_s}


_EPOCH_KEYS = {
    "epoch": "epoch", "train_loss": "epoch/train_loss", "lr": "epoch/lr",
    "img_per_s": "epoch/img_per_s", "epoch_time_s": "epoch/time_s", "val_loss": "val/loss",
    "val_top1": "val/top1", "val_top5": "val/top5",
}  # fmt: skip


def epoch_metrics(row: dict[str, Any]) -> dict[str, float]:
    """A metrics.csv row under tracker names (epochs without evaluation have no val/)."""
    return {name: row[k] for k, name in _EPOCH_KEYS.items() if row.get(k) is not None}


class Fanout:
    """Every tracker named for one run (none on DDP ranks > 0). Never raises: see the module
    docstring. Methods run on the training thread and only queue work."""

    def __init__(self, names: Sequence[str], run_dir: Path, log: logging.Logger,
                 enabled: bool = True) -> None:  # fmt: skip
        self.names = list(dict.fromkeys(names)) if enabled else []
        self.run_dir, self.log = Path(run_dir), log
        self.live: dict[str, Tracker] = {}  # the worker thread's; failed ones are removed
        self.state: dict[str, dict[str, Any]] = {}  # trackers.json, the worker thread's
        self._queue: queue.Queue = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._full_warned = False

    def start(self, rec: RunRecord, resumed: bool) -> None:
        """Open every tracker's run: the saved one when the trial resumed a checkpoint."""
        if not self.names:
            return
        saved = (read_json(self.run_dir / STATE_FILE) or {}) if resumed else {}
        self.live = {name: TRACKERS[name].make() for name in self.names if self._preload(name)}
        self._thread = threading.Thread(target=self._work, name="trackers", daemon=True)
        self._thread.start()
        self._put(("start", run_info(self.run_dir, rec), params(rec), saved))

    def log_step(self, step: int, loss: float, lr: float, img_per_s: float) -> None:
        if self._thread is not None:
            self._put(("metrics", "step", step, step_metrics(loss, lr, img_per_s)))

    def log_epoch(self, row: dict[str, Any]) -> None:
        if self._thread is not None:
            self._put(("metrics", "epoch", int(row["step"]), epoch_metrics(row)))

    def close(self, rec: RunRecord) -> None:
        """Log the run's files and record, finish every run; wait CLOSE_TIMEOUT_S at most."""
        if self._thread is None:
            return
        files = [self.run_dir / name for name in ARTIFACTS]
        summary = {k: v for k, v in rec.to_dict().items() if k in CSV_COLUMNS}
        end = time.monotonic() + CLOSE_TIMEOUT_S
        self._put(("finish", rec.state, summary, files), end)
        self._put(None, end)
        self._thread.join(max(end - time.monotonic(), 0.0))
        if self._thread.is_alive():
            self._warn(f"trackers {', '.join(sorted(self.live))} did not finish within "
                       f"{CLOSE_TIMEOUT_S:g} s; the run goes on without them")  # fmt: skip
        self._thread = None

    def _put(self, job: tuple | None, until: float | None = None) -> None:
        """Queue a job; wait for room only at the end (``until``), never during training."""
        try:
            if until is None:
                self._queue.put_nowait(job)
            else:
                self._queue.put(job, timeout=max(until - time.monotonic(), 0.001))
        except queue.Full:
            if not self._full_warned:
                self._full_warned = True
                self._warn(
                    f"trackers {', '.join(sorted(self.live))} fall behind; values are dropped"
                )

    def _preload(self, name: str) -> bool:
        """Import the tracker's library now (local work, no network); False if it fails."""
        try:
            for module in TRACKERS[name].preload:
                importlib.import_module(module)
            return True
        except Exception as e:  # e.g. a broken install: the run goes on without it
            self._warn(f"tracker {name} failed ({type(e).__name__}: {e}); "
                       "the run goes on without it")  # fmt: skip
            return False

    def _warn(self, msg: str) -> None:
        self.log.warning(msg)
        LOG.warning("%s: %s", self.run_dir.name, msg)

    def _work(self) -> None:
        """The worker thread: every job for every live tracker, trackers.json after each."""
        while (job := self._queue.get()) is not None:
            for name, tracker in list(self.live.items()):
                try:
                    getattr(self, f"_{job[0]}")(name, tracker, *job[1:])
                except Exception as e:  # a tracker never fails the trial
                    del self.live[name]
                    self._warn(f"tracker {name} failed ({type(e).__name__}: {e}); "
                               "the run goes on without it")  # fmt: skip
            if job[0] != "finish":
                self._save()

    def _start(self, name: str, tr: Tracker, info: RunInfo, ps: dict, saved: dict) -> None:
        old = saved.get(name) or {}
        run_id = tr.start(info, old.get("id"))
        continued = run_id == old.get("id")
        entry = {"id": run_id, "last": dict(old.get("last") or {}) if continued else {}}
        if getattr(tr, "uri", None):
            entry["uri"] = tr.uri
        self.state[name] = entry
        if not continued:
            tr.log_params(ps)

    def _metrics(self, name: str, tr: Tracker, stream: str, step: int, values: dict) -> None:
        last = self.state[name]["last"]
        if step > last.get(stream, -1):  # a resumed trial repeats steps logged before
            tr.log_metrics(step, values)
            last[stream] = step

    def _finish(self, name: str, tr: Tracker, state: str, summary: dict, files: list) -> None:
        tr.log_artifacts(files)
        tr.finish(state, summary)

    def _save(self) -> None:
        try:
            write_json(self.run_dir / STATE_FILE, self.state)
        except OSError as e:
            self._warn(f"cannot write {STATE_FILE}: {e}")


def log_report(run_dirs: Sequence[Path], files: Sequence[Path], folder: str = "report") -> None:
    """Add the experiment report's files to each run's MLflow run (the trackers that keep
    files per run); runs without one are skipped. Warns once and returns on a failure."""
    for run_dir in run_dirs:
        entry = (read_json(Path(run_dir) / STATE_FILE) or {}).get("mlflow")
        if not entry or not entry.get("uri"):
            continue
        try:
            tracker = MLflow()
            tracker.reopen(entry)
            tracker.log_artifacts([Path(f) for f in files], folder)
        except Exception as e:  # the report is on disk already
            LOG.warning("report not logged to MLflow (%s: %s)", type(e).__name__, e)
            return
