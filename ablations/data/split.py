"""Which images of a dataset a run uses: per-class subsets and the tuning split.

Both act on a split's label list and return indices into it, so every dataset kind (file
lists before caching, arrays in memory) shares them. Choices are a pure function of
(``data_seed``, purpose, class): a class's pick does not depend on the other classes, and
the kept indices stay in their original order (file order, CIFAR order).

- ``split="tune"``: per class, ``round(tune_fraction * n)`` training images (at least 1, at
  most n - 1) become the validation set; the standard val split is not used at all, so
  choices made on the tune split never see the images the final numbers are measured on.
- ``train_per_class`` / ``val_per_class``: at most that many images per class, applied
  after the tune split (``val_per_class`` then caps the held-out part).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ablations.schema.data_config import DataConfig

PURPOSES = {"tune": 1, "train": 2, "val": 3}  # salts: each purpose draws its own stream


def _by_class(labels: Sequence[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        groups.setdefault(int(y), []).append(i)
    return groups


def _shuffled(idx: list[int], seed: int, purpose: str, label: int) -> list[int]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, PURPOSES[purpose], label]))
    return [idx[k] for k in rng.permutation(len(idx))]


def per_class_subset(
    labels: Sequence[int], per_class: int | None, seed: int, purpose: str
) -> list[int]:
    """Indices keeping at most ``per_class`` items of each class (all when None)."""
    if per_class is None:
        return list(range(len(labels)))
    keep: list[int] = []
    for y, idx in _by_class(labels).items():
        keep += _shuffled(idx, seed, purpose, y)[:per_class]
    return sorted(keep)


def tune_split(labels: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept train indices, held-out indices), stratified per class."""
    train: list[int] = []
    held: list[int] = []
    for y, idx in _by_class(labels).items():
        n_out = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        order = _shuffled(idx, seed, "tune", y)
        held += order[:n_out]
        train += order[n_out:]
    return sorted(train), sorted(held)


def select(
    cfg: DataConfig, train_labels: Sequence[int], val_labels: Sequence[int]
) -> tuple[list[int], list[int], str]:
    """(train indices, val indices, val source) for ``cfg``.

    The val source is ``"val"`` (indices into the val split) or ``"train"`` (split="tune":
    indices into the training split, disjoint from the returned train indices).
    """
    if cfg.split == "tune":
        train_idx, val_idx = tune_split(train_labels, cfg.tune_fraction, cfg.data_seed)
        source, val_pool = "train", train_labels
    else:
        train_idx, val_idx = list(range(len(train_labels))), list(range(len(val_labels)))
        source, val_pool = "val", val_labels
    train_idx = _cap(train_idx, train_labels, cfg.train_per_class, cfg.data_seed, "train")
    val_idx = _cap(val_idx, val_pool, cfg.val_per_class, cfg.data_seed, "val")
    return train_idx, val_idx, source


def _cap(idx: list[int], labels: Sequence[int], per_class, seed: int, purpose: str) -> list[int]:
    sub = per_class_subset([labels[i] for i in idx], per_class, seed, purpose)
    return [idx[k] for k in sub]


def counts_per_class(labels: Sequence[int], classes: Sequence[str]) -> dict[str, int]:
    """Class name -> number of items (0 for classes without any)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    return {c: int(n) for c, n in zip(classes, counts, strict=True)}
