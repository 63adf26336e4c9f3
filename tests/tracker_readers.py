"""Reading back what the experiment trackers stored, from their own files (tests only):
TensorBoard event files, an MLflow store, W&B offline run files (``run-<id>.wandb``)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

_WANDB_BLOCK = 32768  # W&B's run files are LevelDB-style logs: 32 KiB blocks of records
_WANDB_RECORD_HEADER = 7  # crc32 (4), length (2), type (1); the file starts with 7 bytes too


def tensorboard_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag -> [(step, value)] over all event files of the folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def mlflow_run(uri: str, run_id: str) -> dict[str, Any]:
    """params, tags, status, metric histories {key: [(step, value)]} and artifact paths."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    history = {
        k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k))
        for k in run.data.metrics
    }
    artifacts, folders = [], [None]
    while folders:  # every file and folder, depth first
        for a in client.list_artifacts(run_id, folders.pop()):
            artifacts.append(a.path)
            folders += [a.path] if a.is_dir else []
    experiment = client.get_experiment(run.info.experiment_id).name
    return {"params": run.data.params, "tags": run.data.tags, "status": run.info.status,
            "name": run.info.run_name, "experiment": experiment, "metrics": history,
            "artifacts": artifacts}  # fmt: skip


def _wandb_payloads(path: Path) -> list[bytes]:
    raw, out, part, pos = path.read_bytes(), [], b"", _WANDB_RECORD_HEADER
    assert raw[:4] == b":W&B", f"{path}: not a W&B run file"
    while pos + _WANDB_RECORD_HEADER <= len(raw):
        left = _WANDB_BLOCK - pos % _WANDB_BLOCK
        if left < _WANDB_RECORD_HEADER:  # block trailer: zero padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + _WANDB_RECORD_HEADER])
        if kind == 0:
            break
        data = raw[pos + _WANDB_RECORD_HEADER : pos + _WANDB_RECORD_HEADER + length]
        pos += _WANDB_RECORD_HEADER + length
        part = data if kind in (1, 2) else part + data  # FULL, FIRST | MIDDLE, LAST
        if kind in (1, 4):
            out.append(part)
    return out


def wandb_runs(run_dir: Path) -> list[dict[str, Any]]:
    """One dict per offline run file under ``run_dir/wandb`` (oldest first): id, group,
    config, history rows {step: {key: value}} and summary."""
    from wandb.proto import wandb_internal_pb2 as pb

    def item(i: Any) -> tuple[str, Any]:
        return i.key or "/".join(i.nested_key), json.loads(i.value_json)

    runs = []
    for path in sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb")):
        run: dict[str, Any] = {"config": {}, "history": {}, "summary": {}}
        for payload in _wandb_payloads(path):
            rec = pb.Record()
            rec.ParseFromString(payload)
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                run.update(id=rec.run.run_id, group=rec.run.run_group, name=rec.run.display_name)
            elif kind == "config":
                run["config"].update(item(i) for i in rec.config.update)
            elif kind == "history":
                values = dict(item(i) for i in rec.history.item)
                run["history"].setdefault(int(values["_step"]), {}).update(values)
            elif kind == "summary":
                run["summary"].update(item(i) for i in rec.summary.update)
        runs.append(run)
    return runs
