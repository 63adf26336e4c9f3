"""Filling a run's record (ablations/schema/record.py) from what this run resolved: its config, the
runtime (device, precision, compile, world size) and what the data builder found."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

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
    """The machine's load at ``when`` ("start", "epoch" or "end"): the 1-minute load average
    (at start and end by name, every sample into the run's mean), the cores and this process's
    torch threads, and (at start and end) the other runs of this experiment folder that are
    RUNNING (their records: a stale one of a killed run counts too)."""
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:  # not available on this platform: the report says "not recorded"
        load = None
    if load is not None:
        if when != "epoch":
            rec.load[f"loadavg_1m_{when}"] = load
        n = int(rec.load.get("loadavg_1m_samples", 0))
        mean = float(rec.load.get("loadavg_1m_mean", 0.0))
        rec.load["loadavg_1m_mean"] = round((mean * n + load) / (n + 1), 2)
        rec.load["loadavg_1m_samples"] = n + 1
    rec.load["cpus"], rec.load["threads"] = os.cpu_count(), torch.get_num_threads()
    if when != "epoch":
        key = "concurrent_trials" if when == "start" else "concurrent_trials_end"
        rec.load[key] = len(_running_others(Path(run_dir)))


def _running_others(run_dir: Path) -> list[Path]:
    others = [p for p in run_dir.parent.glob("*") if p != run_dir]
    return [p for p in others if (r := read(p)) is not None and r.state == "RUNNING"]
