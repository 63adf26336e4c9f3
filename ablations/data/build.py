"""``build_datasets`` and ``prepare_cache``: config in, datasets (+ provenance) out."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import Dataset

from .cache import cache_key, default_cache_dir, open_cached, read_index
from .cache_build import ensure_cache
from .config import DataConfig, DataConfigError
from .imagefolder import ImageFolderDataset, SplitFiles, scan_class_folders, subdirs
from .imagenet100 import scan_imagenet100
from .synthetic import SyntheticDataset, class_names
from .transforms import eval_transform, train_transform

log = logging.getLogger("ablations.data")


@dataclass
class DataBundle:
    """Train/val datasets yielding (float (3, H, W) normalised, int label), plus provenance."""

    train: Dataset
    val: Dataset
    num_classes: int
    class_names: list[str]
    info: dict = field(default_factory=dict)


def _build_synthetic(cfg: DataConfig) -> DataBundle:
    if cfg.augment == "paper":
        log.warning("synthetic data with augment='paper': flips change labels; use 'light'")
    args = (cfg.num_classes, cfg.img_size, cfg.data_seed)
    train_tf = train_transform(cfg.augment, cfg.img_size, "exact")
    train = SyntheticDataset("train", cfg.train_samples, *args, transform=train_tf)
    val = SyntheticDataset(
        "val", cfg.val_samples, *args, transform=eval_transform(cfg.img_size, "exact")
    )
    names = class_names(cfg.num_classes)
    info = {
        "dataset": "synthetic",
        "class_list": None,
        "class_to_idx": {n: i for i, n in enumerate(names)},
        "counts": {"train": len(train), "val": len(val)},
        "data_seed": cfg.data_seed,
        "img_size": cfg.img_size,
        "augment": cfg.augment,
        "skipped": [],
        "num_skipped": 0,
        "cache": None,
    }
    return DataBundle(train, val, cfg.num_classes, names, info)


def _scan_imagefolder(cfg: DataConfig) -> tuple:
    root = Path(cfg.root).expanduser()
    train, val = root / "train", root / "val"
    for d in (root, train, val):
        if not d.is_dir():
            raise DataConfigError(
                f"{d}: no such folder (expected {root}/train/<class>/ and val/<class>/)"
            )
    classes = subdirs(train)
    if len(classes) < 2:
        raise DataConfigError(f"{train}: {len(classes)} class folders (expected at least 2)")
    unknown = sorted(set(subdirs(val)) - set(classes))
    if unknown:
        raise DataConfigError(
            f"{val / unknown[0]}: class not in {train} (val classes must be train classes)"
        )
    train_files, train_counts = scan_class_folders(train, classes, cfg.strict, required=True)
    val_files, val_counts = scan_class_folders(val, classes, cfg.strict, required=False)
    info = {"class_list": None, "root": str(root), "train_per_class": train_counts}
    info.update(
        val_per_class=val_counts, val_missing_classes=[c for c, n in val_counts.items() if not n]
    )
    return classes, train_files, val_files, info


def _scan(cfg: DataConfig) -> tuple[list[str], SplitFiles, SplitFiles, dict]:
    cfg.validate()
    if cfg.dataset == "synthetic":
        raise DataConfigError("data.dataset='synthetic' is generated in memory: nothing to cache")
    if cfg.dataset == "imagenet100":
        classes, train, val, info = scan_imagenet100(cfg.root, cfg.class_list, cfg.strict)
    else:
        classes, train, val, info = _scan_imagefolder(cfg)
    if not val.samples:
        raise DataConfigError(f"{info['root']}/val: no images of the selected classes")
    info["skipped"] = [{**x, "split": "train"} for x in train.skipped]
    info["skipped"] += [{**x, "split": "val"} for x in val.skipped]
    return classes, train, val, info


def _cache_folder(cfg: DataConfig, classes, train: SplitFiles, val: SplitFiles, info) -> tuple:
    sizes = {"train": cfg.stored_size, "val": cfg.img_size}
    key = cache_key({"train": train.samples, "val": val.samples}, classes, sizes)
    tag = Path(str(info["class_list"])).stem if info["class_list"] else "all"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{cfg.dataset}-{tag}-{cfg.img_size}px")
    root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir(cfg.root)
    return root / f"{name}-{key[:16]}", key, sizes


def _prepare(cfg: DataConfig, progress: bool) -> tuple[Path, str, bool, list[str], dict]:
    classes, train, val, info = _scan(cfg)
    folder, key, sizes = _cache_folder(cfg, classes, train, val, info)
    jobs = {"train": (train.samples, sizes["train"]), "val": (val.samples, sizes["val"])}
    meta = {"dataset": cfg.dataset, "class_list": info["class_list"], "classes": classes}
    meta["img_size"], meta["stored_size"] = cfg.img_size, sizes
    built = ensure_cache(folder, key, jobs, meta, cfg.num_workers, cfg.strict, progress)
    return folder, key, built, classes, info


def prepare_cache(cfg: DataConfig, progress: bool = True) -> Path:
    """Build (once) the uint8 cache for an image-folder dataset; return its folder."""
    return _prepare(cfg, progress)[0]


def _common_info(cfg: DataConfig, classes: list[str], info: dict, train, val) -> dict:
    return {
        "dataset": cfg.dataset,
        **info,
        "class_to_idx": {c: i for i, c in enumerate(classes)},
        "counts": {"train": len(train), "val": len(val)},
        "img_size": cfg.img_size,
        "augment": cfg.augment,
    }


def build_datasets(cfg: DataConfig) -> DataBundle:
    """Datasets for ``cfg`` (building the cache first when enabled and not yet built)."""
    cfg.validate()
    if cfg.dataset == "synthetic":
        return _build_synthetic(cfg)
    if cfg.cache:
        folder, key, built, classes, info = _prepare(cfg, progress=True)
        index = read_index(folder)
        on_device = cfg.augment_on == "device"  # raw uint8 squares: the device augments
        train_tf = None if on_device else train_transform(cfg.augment, cfg.img_size, "square")
        train = open_cached(folder, "train", train_tf, index)
        val = open_cached(folder, "val", eval_transform(cfg.img_size, "exact"), index)
        info["skipped"] += index["skipped"]
        info["cache"] = {"path": str(folder), "key": key, "built_now": built}
        info["stored_size"] = cfg.stored_size
    else:
        classes, train_files, val_files, info = _scan(cfg)
        tf = train_transform(cfg.augment, cfg.img_size, "raw")
        train = ImageFolderDataset(train_files.samples, tf, cfg.strict)
        val = ImageFolderDataset(val_files.samples, eval_transform(cfg.img_size, "raw"), cfg.strict)
        info["cache"] = None
        # Live lists: decode failures found while iterating (in this process) land here.
        info["runtime_skipped"] = {"train": train.skipped, "val": val.skipped}
    info = _common_info(cfg, classes, info, train, val)
    info["num_skipped"] = len(info["skipped"])
    if info["num_skipped"]:
        log.warning("%d bad files skipped (listed in info['skipped'])", info["num_skipped"])
    return DataBundle(train, val, len(classes), list(classes), info)
