"""Filling a run's record (ablations/schema/record.py) from what this run resolved: its config, the
runtime (device, precision, compile, world size) and what the data builder found."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import vil
from ablations.schema import imports
from ablations.schema.config import RunConfig, science, to_dict
from ablations.schema.files import utc_now
from ablations.schema.record import RunRecord, fingerprint, read
from ablations.train.optim import peak_lr
from ablations.train.runtime import Runtime, device_name, git_revision, versions


def start_record(config: RunConfig, rt: Runtime, rec: RunRecord) -> RunRecord:
    """The setting of the run as resolved here (the report states these, not a command's)."""
    m, t = config.model, config.train
    dim, depth = model_shape(config)
    rec.seed, rec.traversal, rec.pooling = t.seed, m.traversal, m.pooling_name
    rec.science = science(config)
    rec.fingerprint = fingerprint(rec.science)
    rec.state, rec.fail_reason, rec.started_at = "RUNNING", None, utc_now()
    rec.model_size, rec.dim, rec.depth, rec.patch_size = m.size, dim, depth, m.patch_size
    rec.init, rec.release = m.init, m.release
    rec.epochs, rec.batch_size, rec.base_lr = t.epochs, t.batch_size, t.lr
    rec.peak_lr = peak_lr(t)
    rec.img_size, rec.dataset = config.data.img_size, config.data.dataset
    rec.precision, rec.compile = rt.precision, rt.compile
    rec.device, rec.world_size = device_name(rt.device), rt.world
    rec.versions, rec.git_rev, rec.config = versions(), git_revision(), to_dict(config)
    rec.imports = imports.record()
    return rec


def model_shape(config: RunConfig) -> tuple[int, int]:

    dim, depth = vil.SIZES[config.model.size]
    return config.model.dim or dim, config.model.depth or depth


def data_fields(rec: RunRecord, bundle: Any) -> None:
    """What the data builder reports about the images this run saw."""
    info = dict(getattr(bundle, "info", {}) or {})
    counts = info.get("counts") or {}
    rec.dataset, rec.data_root = info.get("dataset", rec.dataset), info.get("root")
    rec.class_list, rec.num_classes = info.get("class_list"), bundle.num_classes
    rec.train_images, rec.val_images = counts.get("train"), counts.get("val")
    rec.num_skipped = info.get("num_skipped", len(info.get("skipped") or []))
    rec.chance_top1 = 100.0 / bundle.num_classes if bundle.num_classes else None
    rec.data = {
        "class_names": list(bundle.class_names),
        **{k: v for k, v in info.items() if k not in ("class_to_idx", "runtime_skipped")},
    }


def record_load(rec: RunRecord, run_dir: Path, when: str) -> None:
    """The machine's load at ``when`` ("start" / "end"): 1-minute load average, CPU count and
    (at start) the other runs of this experiment folder that are RUNNING (their records)."""
    try:
        rec.load[f"loadavg_1m_{when}"] = round(os.getloadavg()[0], 2)
    except OSError:  # not available on this platform: the report says "not recorded"
        pass
    rec.load["cpus"] = os.cpu_count()
    if when == "start":
        others = [p for p in Path(run_dir).parent.glob("*") if p != Path(run_dir)]
        running = [p for p in others if (r := read(p)) is not None and r.state == "RUNNING"]
        rec.load["concurrent_trials"] = len(running)
