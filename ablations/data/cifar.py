"""CIFAR-10 / CIFAR-100 through torchvision's datasets, in torchvision's on-disk format.

``data.root`` holds ``cifar-10-batches-py/`` or ``cifar-100-python/`` (the python pickles
of the official archives, as torchvision extracts them). ``data.download: true`` lets
torchvision fetch and check them on the user's machine; otherwise nothing is fetched and a
missing or damaged copy is a one-line ``DataConfigError``. Images stay in memory as uint8
(50,000 x 3 x 32 x 32 = 150 MB): already decoded, so no cache is built for them.
CIFAR-100 uses its 100 fine labels.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ablations.schema.data_config import DataConfigError

from .arrays import Arrays

LOAD_ERRORS = (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, IndexError)


def _torchvision_class(name: str):
    from torchvision import datasets  # lazy: only CIFAR runs pay for the import

    return {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]


def expected_files(name: str, root: Path) -> list[Path]:
    """Every file torchvision reads for ``name`` under ``root``."""
    cls = _torchvision_class(name)
    folder = root / cls.base_folder
    names = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return [folder / f for f in names]


def _read(name: str, root: Path, train: bool, download: bool):
    cls = _torchvision_class(name)
    folder = root / cls.base_folder
    try:
        return cls(str(root), train=train, download=download)
    except RuntimeError as err:  # torchvision: "not found or corrupted" (md5 mismatch)
        raise DataConfigError(
            f"{folder}: corrupted (a file's md5 differs from torchvision's for {name}); "
            "delete the folder and set data.download: true to fetch it again"
        ) from err
    except LOAD_ERRORS as err:
        raise DataConfigError(
            f"{folder}: cannot read {name} ({type(err).__name__}: {err}); expected "
            "torchvision's python pickles (delete and set data.download: true)"
        ) from err
    except OSError as err:  # urllib's URLError (no network, DNS, HTTP), a full disk, ...
        if not download:
            raise
        raise DataConfigError(_download_failed(cls, root, err)) from err


def _download_failed(cls, root: Path, err: OSError) -> str:
    """One line for a failed fetch: what was fetched, why it failed, the offline way."""
    reason = " ".join(str(getattr(err, "reason", None) or err).split())[:160]
    return (
        f"{root / cls.filename}: cannot download {cls.url} ({type(err).__name__}: {reason}); "
        f"without internet, fetch that file elsewhere and extract it into {root}, then set "
        "data.download: false"
    )


def load(cfg) -> Arrays:
    """The registry's entry point for ``cifar10`` and ``cifar100``."""
    root = Path(cfg.root).expanduser()
    if not cfg.download:
        missing = [p for p in expected_files(cfg.dataset, root) if not p.is_file()]
        if missing:
            raise DataConfigError(
                f"{missing[0]}: missing ({len(missing)} of torchvision's {cfg.dataset} files "
                f"absent from {missing[0].parent}); set data.download: true to fetch them"
            )
    elif not root.exists():
        root.mkdir(parents=True)
    train = _read(cfg.dataset, root, True, cfg.download)
    val = _read(cfg.dataset, root, False, False)
    if len(train.classes) < 2 or not len(val.data):
        raise DataConfigError(
            f"{root / train.base_folder}: {len(train.classes)} classes, {len(val.data)} test "
            "images (expected the full dataset)"
        )
    return Arrays(
        list(train.classes),
        np.ascontiguousarray(train.data.transpose(0, 3, 1, 2)),  # torchvision keeps HWC
        np.asarray(train.targets, dtype=np.int64),
        np.ascontiguousarray(val.data.transpose(0, 3, 1, 2)),
        np.asarray(val.targets, dtype=np.int64),
        root=str(root),
        info={"val_labels": f"{train.base_folder}/{train.test_list[0][0]}"},
    )
