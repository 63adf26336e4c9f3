"""The dataset registry: one name -> one kind; validation, building and ``describe`` read it.

Two families share the rest of the pipeline:
- ``files``: ``scan(cfg) -> FileScan`` lists image files (no decoding); they are decoded
  once into the uint8 cache (``data.cache: true``) or on the fly;
- ``arrays``: ``load(cfg) -> Arrays`` returns uint8 images already in memory (CIFAR's
  pickles, the generated synthetic task): no cache would make them cheaper.
The entry point is named as ``"module:function"`` and imported on use, so this module (read
by ``config.py``) imports no dataset code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetKind:
    """One ``data.dataset`` value."""

    name: str
    family: str  # "files" (scan -> cache / decode) | "arrays" (uint8 arrays in memory)
    entry: str  # "module:function" under ablations.data: scan(cfg) or load(cfg)
    layout: str  # what data.root must hold (used in messages); "" = needs no root
    can_download: bool = False  # data.download: true fetches it into data.root

    def function(self) -> Callable:
        """The scan/load function of this kind (imported now)."""
        module, name = self.entry.split(":")
        return getattr(importlib.import_module(f"ablations.data.{module}"), name)


KINDS: dict[str, DatasetKind] = {
    k.name: k
    for k in (
        DatasetKind("synthetic", "arrays", "synthetic:load", ""),
        DatasetKind(
            "imagenet100",
            "files",
            "imagenet100:scan",
            "train/<wnid>/ and val/<wnid>/ (or a flat val/ with its label file)",
        ),
        DatasetKind("imagefolder", "files", "imagefolder:scan", "train/<class>/ and val/<class>/"),
        DatasetKind(
            "tiny_imagenet",
            "files",
            "tiny_imagenet:scan",
            "train/<wnid>/images/, val/images/ and val/val_annotations.txt",
        ),
        DatasetKind("cifar10", "arrays", "cifar:load", "cifar-10-batches-py/", True),
        DatasetKind("cifar100", "arrays", "cifar:load", "cifar-100-python/", True),
    )
}

# Classes a kind always has (the official datasets); imagenet100's come from its class list.
FIXED_CLASSES = {"cifar10": 10, "cifar100": 100, "tiny_imagenet": 200}
CLASS_LIST_SIZES = {"vil": 100, "cmc": 100}  # the shipped lists (classlists/<name>.txt)


def declared_classes(cfg) -> int | None:
    """Classes of ``cfg``'s dataset known without reading its files (e.g. to price a dry
    run): the synthetic task's ``num_classes``, a fixed kind's count, a shipped class list's;
    None where only the files can tell (an image folder, a list file): ``describe`` them."""
    if cfg.dataset == "synthetic":
        return cfg.num_classes
    if cfg.dataset == "imagenet100":
        return CLASS_LIST_SIZES.get(cfg.class_list)
    return FIXED_CLASSES.get(cfg.dataset)
