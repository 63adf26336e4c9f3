"""Checks that run before the first trial (and in ``--dry-run``), each failing with one line:
the device, the data (root, classes, images vs batch) and the storage. Nothing is written
before they pass, so a wrong setting leaves no half-made results folder.
"""

from __future__ import annotations

from typing import Any

from ablations.data import DataConfigError, describe
from ablations.schema.config import ConfigError
from ablations.schema.device import check_device
from ablations.schema.files import check_folder_creatable, unwritable
from ablations.study.storage import check_storage
from ablations.sweep.spec import Sweep
from ablations.train import trackers


def check_data(sweep: Sweep) -> dict[str, Any]:
    """Each distinct data setting of the grid once: (root, classes, sizes) vs the batch.

    Returns the data summary per setting (``repr(cfg.data)``), e.g. for pricing a dry run.
    """

    seen: dict[str, Any] = {}
    for p in sweep.grid:
        cfg = sweep.config_for(p)
        key = repr(cfg.data)
        if key in seen:
            continue
        try:
            summary = describe(cfg.data)
        except DataConfigError as e:
            raise ConfigError(f"data: {e}") from None
        if summary.train_images < cfg.train.batch_size:
            raise ConfigError(
                f"data: {summary.root or cfg.data.dataset}: {summary.train_images} training "
                f"images, fewer than train.batch_size {cfg.train.batch_size}"
            )
        seen[key] = summary
    return seen


def check_trackers(sweep: Sweep) -> None:
    """Every ``train.trackers`` name of the grid is registered and installed."""
    for p in sweep.grid:
        trackers.check(sweep.config_for(p).train.trackers, f"{p.name}: train.trackers")


def check_devices(sweep: Sweep) -> None:
    """Each distinct ``train.device`` is present here: a dry run refuses what the sweep would
    (``config.validate`` skips availability when the data are not checked)."""
    for device in dict.fromkeys(cfg.train.device for cfg in sweep.configs.values()):
        check_device(device, available=True)


def check_results(sweep: Sweep) -> None:
    """The experiment folder can be written (made, where it does not exist yet)."""
    why = unwritable(sweep.exp_dir)
    if why is not None:
        raise ConfigError(f"--results {sweep.opts.results}: the sweep writes {sweep.exp_dir}, "
                          f"but {why}; pass a writable --results folder")  # fmt: skip


def check_all(sweep: Sweep, data: bool = True) -> dict[str, Any]:
    """Results folder, device, data, trackers and storage: the checks a sweep and its dry run
    share (the folder first: a results folder that cannot be made fails before any scan)."""
    check_folder_creatable(sweep.exp_dir, f"--results {sweep.opts.results}")
    check_devices(sweep)
    check_trackers(sweep)
    check_results(sweep)
    classes = check_data(sweep) if data else {}
    check_storage(sweep.opts.storage)
    return classes


def data_checkable(sweep: Any) -> bool:
    """Whether a dry run can check (and count) the data: a data.root is set, or the data
    are generated. Without it the data are priced from what their kind declares."""
    return any(c.data.root or c.data.dataset == "synthetic" for c in sweep.configs.values())
