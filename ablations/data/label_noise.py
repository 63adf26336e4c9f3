"""Planted label noise (``data.label_noise``): a share of the training labels replaced by
another class, drawn from ``data.data_seed`` alone.

The draws never touch the run seed's streams (data order, augmentation, init), so a run with
label noise sees the same images in the same order, augmented alike, as the run without it:
the two differ only in those labels, an effect of known direction (``vil-ablate calibrate``).
Exactly ``round(share * n)`` images get a wrong label (each a uniformly drawn *other* class).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import Dataset

NOISE_PURPOSE = 7  # the SeedSequence key of these draws (split.py's purposes are others)


def noisy_targets(targets: Any, num_classes: int, share: float, seed: int) -> np.ndarray:
    """``targets`` with ``round(share * len)`` of them moved to another class (seeded)."""
    out = np.asarray(targets, dtype=np.int64).copy()
    k = round(share * out.size)
    if k == 0 or num_classes < 2:
        return out
    rng = np.random.default_rng(np.random.SeedSequence([seed, NOISE_PURPOSE]))
    idx = rng.choice(out.size, size=k, replace=False)
    out[idx] = (out[idx] + rng.integers(1, num_classes, size=k)) % num_classes
    return out


class NoisyLabels(Dataset):
    """``base`` with its labels replaced by ``targets`` (the images are untouched)."""

    def __init__(self, base: Dataset, targets: np.ndarray) -> None:
        self.base, self.targets = base, [int(t) for t in targets]
        self.replaced = int(np.sum(np.asarray(base.targets) != np.asarray(targets)))

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> Any:
        image, _ = self.base[index]
        return image, self.targets[index]


def with_label_noise(train: Dataset, num_classes: int, share: float, seed: int) -> Dataset:
    """``train`` itself without noise, else wrapped in ``NoisyLabels``."""
    if share <= 0:
        return train
    return NoisyLabels(train, noisy_targets(train.targets, num_classes, share, seed))
