"""Checks that run before the first trial (and in ``--dry-run``), each failing with one line:
the device, the data (root, classes, images vs batch), the storage. Nothing is written
before they pass, so a wrong setting leaves no half-made results folder.
"""

from __future__ import annotations

from typing import Any

from ablations.config import ConfigError, RunConfig
from ablations.sweep.spec import Sweep


def check_device(cfg: RunConfig) -> None:
    """``auto``, ``cpu``, ``cuda`` (this rank's GPU), ``cuda:N``, ``mps``: usable here."""
    try:  # TEMP until the issue16 merge
        from ablations.train.runtime import check_device as check
    except ImportError:
        return
    check(cfg.train.device)


def check_data(sweep: Sweep) -> dict[str, Any]:
    """Each distinct data setting of the grid once: (root, classes, sizes) vs the batch.

    Returns the data summary per setting (``repr(cfg.data)``), e.g. for pricing a dry run.
    """
    from ablations.data import DataConfigError

    try:  # TEMP until the issue14 merge
        from ablations.data import describe
    except ImportError:
        describe = _describe_tmp

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


def check_all(sweep: Sweep, data: bool = True) -> dict[str, Any]:
    """Device, data and storage, in that order (cheapest first)."""
    from ablations.sweep.storage import check_storage

    for cfg in {repr(c.train.device): c for c in sweep.configs.values()}.values():
        check_device(cfg)
    classes = check_data(sweep) if data else {}
    check_storage(sweep.opts.storage)
    return classes


def _describe_tmp(cfg):  # TEMP until the issue14 merge
    from types import SimpleNamespace

    from ablations.data.build import _scan

    if cfg.dataset == "synthetic":
        return SimpleNamespace(
            root=None, num_classes=cfg.num_classes, train_images=cfg.train_samples
        )
    classes, train, val, info = _scan(cfg)
    return SimpleNamespace(
        root=info.get("root"), num_classes=len(classes), train_images=len(train.samples)
    )
