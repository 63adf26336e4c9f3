"""The experiment trackers themselves: TensorBoard, MLflow, Weights & Biases.

One class per tracker behind the ``Tracker`` protocol; ``trackers.py`` registers them by name
and calls them only from its background thread, so a slow or broken tracker never blocks the
trial. Each library is imported when its tracker starts: they are optional extras
(``pip install vil-ablate[trackers]``), checked before any training by ``trackers.check``.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# MLflow's run statuses for a record's final state (INTERRUPTED runs are resumed later).
_MLFLOW_STATUS = {"COMPLETE": "FINISHED", "INTERRUPTED": "KILLED"}
_MLFLOW_BATCH = 100  # MLflow takes at most 100 params in one log_batch call


@dataclass(frozen=True)
class RunInfo:
    """Who a run is, for every tracker: its folder, names and the store root."""

    run_dir: Path
    name: str  # e.g. alternating-s0 (tune trials: tune/<variant>/<trial>)
    protocol: str
    experiment: str
    variant: str
    seed: int
    fingerprint: str
    results: Path  # root for local stores: <results>/mlruns

    @property
    def group(self) -> str:
        """``<protocol>/<experiment>``: the MLflow experiment, the W&B group."""
        return f"{self.protocol}/{self.experiment}"


class Tracker(Protocol):
    """What the fan-out calls, in this order: start, log_params (new runs only),
    log_metrics (any number), log_artifacts, finish."""

    def start(self, info: RunInfo, resume_id: str | None) -> str:
        """Open the run (continue ``resume_id`` where it still exists); return its id."""

    def log_params(self, params: dict[str, Any]) -> None: ...

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None: ...

    def log_artifacts(self, paths: list[Path], folder: str = "") -> None: ...

    def finish(self, state: str, summary: dict[str, Any]) -> None:
        """Close the run; ``summary`` is the run record's scalar fields."""


def _plain(value: Any) -> Any:
    """A value every tracker takes as a parameter (lists and None as text)."""
    return value if isinstance(value, bool | int | float | str) else str(value)


class TensorBoard:
    """Event files in the run folder: ``tensorboard --logdir <results>/<protocol>/<exp>``
    shows every run of the experiment side by side (the folder is the run's identity)."""

    def start(self, info: RunInfo, resume_id: str | None) -> str:
        from torch.utils.tensorboard import SummaryWriter

        if resume_id is None:  # a fresh attempt: earlier attempts' curves would overlap it
            for old in info.run_dir.glob("events.out.tfevents.*"):
                old.unlink()
        self.writer = SummaryWriter(log_dir=str(info.run_dir))
        return resume_id or uuid.uuid4().hex

    def log_params(self, params: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        shown = {"val/top1": 0.0, "val/top5": 0.0, "train/loss": 0.0}  # HParams tab's columns
        for summary in hparams({k: _plain(v) for k, v in params.items()}, shown):
            self.writer.file_writer.add_summary(summary)
        table = "\n".join(f"| {k} | {v} |" for k, v in params.items())
        self.writer.add_text("config", "| key | value |\n|---|---|\n" + table)

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_artifacts(self, paths: list[Path], folder: str = "") -> None:
        """Event files hold scalars and text only; the files stay in the run folder."""

    def finish(self, state: str, summary: dict[str, Any]) -> None:
        self.writer.add_text("state", state)
        self.writer.close()


def mlflow_uri(results: Path) -> tuple[str, str | None]:
    """(tracking URI, artifact location for new experiments): ``MLFLOW_TRACKING_URI`` (the
    server's own artifact store), else a SQLite store in ``<results>/mlruns`` (MLflow 3
    refuses a plain folder store unless told otherwise; SQLite works with every version)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"], None
    root = Path(results).resolve() / "mlruns"
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()


class MLflow:
    """One MLflow run per grid point in the experiment ``<protocol>/<experiment>``."""

    def start(self, info: RunInfo, resume_id: str | None) -> str:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        self.uri, artifacts = mlflow_uri(info.results)
        self.client = MlflowClient(tracking_uri=self.uri)
        if resume_id is not None:
            try:
                self.client.update_run(resume_id, status="RUNNING")
                self.run_id = resume_id
                return resume_id
            except MlflowException:  # the store was moved or cleared: a new run
                pass
        tags = {"variant": info.variant, "seed": str(info.seed), "fingerprint": info.fingerprint}
        run = self.client.create_run(self._experiment(info.group, artifacts), run_name=info.name,
                                     tags=tags)  # fmt: skip
        self.run_id = run.info.run_id
        return self.run_id

    def _experiment(self, name: str, artifacts: str | None) -> str:
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=artifacts)
        except MlflowException:  # another worker created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), _MLFLOW_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _MLFLOW_BATCH])

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        ms = int(time.time() * 1000)
        batch = [Metric(k, float(v), ms, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_artifacts(self, paths: list[Path], folder: str = "") -> None:
        for path in paths:
            if path.is_dir():
                sub = f"{folder}/{path.name}" if folder else path.name
                self.client.log_artifacts(self.run_id, str(path), sub)
            elif path.exists():
                self.client.log_artifact(self.run_id, str(path), folder or None)

    def finish(self, state: str, summary: dict[str, Any]) -> None:
        self.client.set_tag(self.run_id, "state", state)
        self.client.set_terminated(self.run_id, _MLFLOW_STATUS.get(state, "FAILED"))

    def reopen(self, entry: dict[str, Any]) -> None:
        """Point at a run written earlier (``trackers.json``'s entry), e.g. for the report."""
        from mlflow import MlflowClient

        self.uri, self.run_id = entry["uri"], entry["id"]
        self.client = MlflowClient(tracking_uri=self.uri)


class WandB:
    """One W&B run per grid point, grouped by ``<protocol>/<experiment>``, files in the run
    folder (``wandb/``); ``WANDB_MODE=offline`` and ``WANDB_PROJECT`` are respected."""

    def start(self, info: RunInfo, resume_id: str | None) -> str:
        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "vil-ablate"), group=info.group,
            name=info.name, job_type=info.protocol, tags=[info.protocol, info.experiment],
            id=resume_id, resume="allow" if resume_id else None, dir=str(info.run_dir),
            reinit="create_new",  # one run per trial, several trials in one process
            settings=wandb.Settings(console="off", silent=True),  # leave stdout alone
        )  # fmt: skip
        return self.run.id

    def log_params(self, params: dict[str, Any]) -> None:
        self.run.config.update({k: _plain(v) for k, v in params.items()}, allow_val_change=True)

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def log_artifacts(self, paths: list[Path], folder: str = "") -> None:
        """The run record goes into the summary (``finish``); W&B keeps no other files here."""

    def finish(self, state: str, summary: dict[str, Any]) -> None:
        self.run.summary.update({k: v for k, v in summary.items() if v is not None})
        self.run.finish(exit_code=0 if state == "COMPLETE" else 1)
