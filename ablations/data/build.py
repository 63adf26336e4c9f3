"""``build_datasets``, ``prepare_cache`` and ``describe``: config in, datasets (+ provenance) out.

The dataset kind (``schema.datasets.KINDS[cfg.dataset]``) says how to find the images; everything
after that is shared: the subset / tune-split selection (``split.py``), the uint8 cache for
file datasets, the transforms, and the provenance record (``provenance.py``).
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import Dataset

from ablations.schema.data_config import DataConfig, DataConfigError
from ablations.schema.datasets import KINDS, DatasetKind

from .arrays import Arrays, take
from .cache import cache_key, default_cache_dir, open_cached, read_index
from .cache_build import ensure_cache
from .imagefolder import FileScan, ImageFolderDataset, SplitFiles
from .label_noise import with_label_noise
from .provenance import DataProvenance
from .split import counts_per_class, select
from .transforms import eval_transform, train_transform

log = logging.getLogger("ablations.data")
HELD_OUT = "held out of train (split='tune')"  # provenance: val_labels of the tune split


@dataclass
class DataBundle:
    """Train/val datasets yielding (float (3, H, W) normalised, int label), plus provenance."""

    train: Dataset
    val: Dataset
    num_classes: int
    class_names: list[str]
    info: dict = field(default_factory=dict)  # DataProvenance.to_dict(): same keys everywhere


def _provenance(cfg: DataConfig, classes, train_targets, val_targets, **kw) -> DataProvenance:
    return DataProvenance(
        dataset=cfg.dataset,
        class_names=list(classes),
        split=cfg.split,
        data_seed=cfg.data_seed,
        train_per_class=counts_per_class(train_targets, classes),
        val_per_class=counts_per_class(val_targets, classes),
        img_size=cfg.img_size,
        augment=cfg.augment,
        **kw,
    )


def _build_arrays(cfg: DataConfig, arrays: Arrays) -> DataBundle:
    train_idx, val_idx, source = select(cfg, arrays.train_labels, arrays.val_labels)
    pool = (arrays.train_images, arrays.train_labels) if source == "train" else None
    pool = pool or (arrays.val_images, arrays.val_labels)
    train_tf = train_transform(cfg.augment, cfg.img_size, "square")
    train = take(arrays.train_images, arrays.train_labels, train_idx, train_tf)
    val = take(*pool, val_idx, eval_transform(cfg.img_size, "square"))
    prov = _provenance(
        cfg, arrays.classes, train.targets, val.targets, root=arrays.root, class_list=None,
        val_source=source,
        val_labels=HELD_OUT if source == "train" else arrays.info.get("val_labels"),
    )  # fmt: skip
    return DataBundle(train, val, len(arrays.classes), list(arrays.classes), prov.to_dict())


def _labels(files: SplitFiles) -> list[int]:
    return [s.label for s in files.samples]


def scan_selected(cfg: DataConfig) -> tuple[FileScan, str]:
    """The selected files of a ``files`` kind (subsets / tune split applied) + val source."""
    cfg.validate()
    kind = KINDS[cfg.dataset]
    if kind.family != "files":
        raise DataConfigError(
            f"data.dataset={cfg.dataset!r} is held in memory as arrays: nothing to cache"
        )
    found: FileScan = entry_function(kind)(cfg)
    train_idx, val_idx, source = select(cfg, _labels(found.train), _labels(found.val))
    pool = found.train if source == "train" else found.val
    train = SplitFiles([found.train.samples[i] for i in train_idx], found.train.skipped)
    val = SplitFiles([pool.samples[i] for i in val_idx], [] if source == "train" else pool.skipped)
    if not val.samples:
        raise DataConfigError(f"{found.root}/val: no images of the selected classes")
    kept = FileScan(found.classes, train, val, found.root, found.class_list, found.val_labels)
    return kept, source


def _skipped(found: FileScan) -> list[dict]:
    return [{**x, "split": "train"} for x in found.train.skipped] + [
        {**x, "split": "val"} for x in found.val.skipped
    ]


def _cache_folder(cfg: DataConfig, found: FileScan) -> tuple[Path, str, dict]:
    sizes = {"train": cfg.stored_size, "val": cfg.img_size}
    key = cache_key({"train": found.train.samples, "val": found.val.samples}, found.classes, sizes)
    tag = Path(str(found.class_list)).stem if found.class_list else "all"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{cfg.dataset}-{tag}-{cfg.img_size}px")
    root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    return root / f"{name}-{key[:16]}", key, sizes


def _prepare(cfg: DataConfig, progress: bool) -> tuple[Path, str, bool, FileScan, str]:
    found, source = scan_selected(cfg)
    folder, key, sizes = _cache_folder(cfg, found)
    jobs = {
        "train": (found.train.samples, sizes["train"]),
        "val": (found.val.samples, sizes["val"]),
    }
    meta = {"dataset": cfg.dataset, "class_list": found.class_list, "classes": found.classes}
    meta["selection"] = {"root": found.root, "split": cfg.split, "tune_fraction": cfg.tune_fraction,
                         "data_seed": cfg.data_seed, "train_per_class": cfg.train_per_class,
                         "val_per_class": cfg.val_per_class}  # fmt: skip
    meta["img_size"], meta["stored_size"] = cfg.img_size, sizes
    built = ensure_cache(folder, key, jobs, meta, cfg.num_workers, cfg.strict, progress)
    return folder, key, built, found, source


def prepare_cache(cfg: DataConfig, progress: bool = True) -> Path:
    """Build (once) the uint8 cache for an image-file dataset; return its folder."""
    return _prepare(cfg, progress)[0]


def _build_files(cfg: DataConfig) -> DataBundle:
    extra: dict = {}
    if cfg.cache:
        folder, key, built, found, source = _prepare(cfg, progress=True)
        index = read_index(folder)
        on_device = cfg.augment_on == "device"  # raw uint8 squares: the device augments
        train_tf = None if on_device else train_transform(cfg.augment, cfg.img_size, "square")
        train = open_cached(folder, "train", train_tf, index)
        val = open_cached(folder, "val", eval_transform(cfg.img_size, "exact"), index)
        skipped = _skipped(found) + index["skipped"]
        extra["cache"] = {"path": str(folder), "key": key, "built_now": built}
        extra["stored_size"] = cfg.stored_size
    else:
        found, source = scan_selected(cfg)
        tf = train_transform(cfg.augment, cfg.img_size, "raw")
        train = ImageFolderDataset(found.train.samples, tf, cfg.strict)
        val_tf = eval_transform(cfg.img_size, "raw")
        val = ImageFolderDataset(found.val.samples, val_tf, cfg.strict)
        skipped = _skipped(found)
        # Live lists: decode failures found while iterating (in this process) land here.
        extra["runtime_skipped"] = {"train": train.skipped, "val": val.skipped}
    val_labels = HELD_OUT if source == "train" else found.val_labels
    prov = _provenance(
        cfg, found.classes, train.targets, val.targets, root=found.root,
        class_list=found.class_list, val_source=source, val_labels=val_labels,
        skipped=skipped, **extra,
    )  # fmt: skip
    if skipped:
        log.warning("%d bad files skipped (listed in info['skipped'])", len(skipped))
    return DataBundle(train, val, len(found.classes), list(found.classes), prov.to_dict())


def build_datasets(cfg: DataConfig) -> DataBundle:
    """Datasets for ``cfg`` (building the cache first when enabled and not yet built)."""
    cfg.validate()
    kind = KINDS[cfg.dataset]
    if kind.family == "arrays":
        bundle = _build_arrays(cfg, entry_function(kind)(cfg))
    else:
        bundle = _build_files(cfg)
    if cfg.label_noise > 0:  # provenance keeps the true per-class counts
        bundle.train = with_label_noise(bundle.train, bundle.num_classes, cfg.label_noise,
                                        cfg.data_seed)  # fmt: skip
        bundle.info["label_noise"] = {"share": cfg.label_noise, "replaced": bundle.train.replaced,
                                      "of": len(bundle.train), "seed": cfg.data_seed}  # fmt: skip
    return bundle


def entry_function(kind: DatasetKind) -> Callable:
    """A kind's scan/load function: its own, or ``module:function`` under ablations.data."""
    if callable(kind.entry):
        return kind.entry
    module, name = kind.entry.split(":")
    return getattr(importlib.import_module(f"ablations.data.{module}"), name)
