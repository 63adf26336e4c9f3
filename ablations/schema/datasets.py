"""The dataset registry: one name -> one kind; validation, building, ``describe`` and cost
estimates read it.

Two families share the rest of the pipeline:
- ``files``: ``scan(cfg) -> FileScan`` lists image files (no decoding); they are decoded
  once into the uint8 cache (``data.cache: true``) or on the fly;
- ``arrays``: ``load(cfg) -> Arrays`` returns uint8 images already in memory (CIFAR's
  pickles, the generated synthetic task): no cache would make them cheaper.
A kind declares what it is without its code: the entry point is ``"module:function"`` under
``ablations.data`` (imported by the data layer when used) or the function itself, for a
dataset registered from a user's own module with :func:`register_dataset`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vil.registry import Registry


def _fixed(n: int) -> Callable[[Any], int]:
    return lambda cfg: n


def _unknown(cfg: Any) -> None:
    return None


@dataclass(frozen=True)
class DatasetKind:
    """One ``data.dataset`` value: its family, entry point, layout and sizes."""

    name: str
    family: str  # "files" (scan -> cache / decode) | "arrays" (uint8 arrays in memory)
    entry: str | Callable  # "module:function" under ablations.data, or scan(cfg) / load(cfg)
    layout: str  # what data.root must hold (used in messages); "" = needs no root
    can_download: bool = False  # data.download: true fetches it into data.root
    classes: Callable[[Any], int | None] = _unknown  # DataConfig -> class count; None: read it
    train_images: Callable[[Any], int | None] = _unknown  # DataConfig -> images (all classes)
    images_note: str = "exact"  # how train_images is known ("exact", "estimate ...")


def _per_class(total: int, classes: int) -> Callable[[Any], int]:
    """``total`` training images, or classes x train_per_class when that is smaller."""
    return lambda cfg: min(total, classes * cfg.train_per_class) if cfg.train_per_class else total


KINDS: Registry[DatasetKind] = Registry("dataset")
CLASS_LIST_SIZES = {"vil": 100, "cmc": 100}  # imagenet100's shipped lists (classlists/*.txt)


def register_dataset(kind: DatasetKind) -> DatasetKind:
    """Add a dataset kind (its name then works as ``data.dataset`` everywhere)."""
    if kind.family not in ("files", "arrays"):
        raise ValueError(f"dataset {kind.name!r}: family {kind.family!r}; valid: files, arrays")
    if kind.name in KINDS and KINDS[kind.name] == kind:
        return kind  # the same kind again (a module imported twice)
    return KINDS.register(kind.name, kind)


for _kind in (
    DatasetKind("synthetic", "arrays", "synthetic:load", "",
                classes=lambda cfg: cfg.num_classes, train_images=lambda cfg: cfg.train_samples),
    DatasetKind("imagenet100", "files", "imagenet100:scan",
                "train/<wnid>/ and val/<wnid>/ (or a flat val/ with its label file)",
                classes=lambda cfg: CLASS_LIST_SIZES.get(cfg.class_list),  # a wnid file: read it
                train_images=_per_class(126_689, 100),
                images_note="estimate (about 1,300 per class)"),
    DatasetKind("imagefolder", "files", "imagefolder:scan", "train/<class>/ and val/<class>/"),
    DatasetKind("tiny_imagenet", "files", "tiny_imagenet:scan",
                "train/<wnid>/images/, val/images/ and val/val_annotations.txt",
                classes=_fixed(200), train_images=_per_class(100_000, 200)),
    DatasetKind("cifar10", "arrays", "cifar:load", "cifar-10-batches-py/", True,
                classes=_fixed(10), train_images=_per_class(50_000, 10)),
    DatasetKind("cifar100", "arrays", "cifar:load", "cifar-100-python/", True,
                classes=_fixed(100), train_images=_per_class(50_000, 100)),
):  # fmt: skip
    register_dataset(_kind)


def known_classes(cfg: Any) -> int | None:
    """Classes of a DataConfig's dataset known without reading its files (to price a dry
    run); None where only the files can tell (an image folder, a wnid list file)."""
    return KINDS[cfg.dataset].classes(cfg)


def known_train_images(cfg: Any) -> tuple[int | None, str]:
    """Training images per epoch the dataset declares, and how that is known."""
    kind = KINDS[cfg.dataset]
    n = kind.train_images(cfg)
    return n, kind.images_note if n is not None else "unknown (not declared; set data.root)"
