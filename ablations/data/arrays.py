"""Datasets held in memory as uint8 arrays (CIFAR pickles, the synthetic task)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass
class Arrays:
    """A dataset kind's images before selection: uint8 (N, 3, H, W) and int labels."""

    classes: list[str]  # class index -> name
    train_images: np.ndarray  # uint8 (N, 3, H, W)
    train_labels: np.ndarray  # int64 (N,)
    val_images: np.ndarray  # uint8 (M, 3, H, W)
    val_labels: np.ndarray  # int64 (M,)
    root: str | None = None  # folder read; None = generated
    info: dict = field(default_factory=dict)  # extra provenance (e.g. val_labels)


class ArrayDataset(Dataset):
    """uint8 (3, H, W) images in memory; the transform turns them into float tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = self.images[index]
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[index])


def take(images: np.ndarray, labels: np.ndarray, idx: list[int], transform) -> ArrayDataset:
    """An ArrayDataset of the rows ``idx`` (a copy: the full arrays can be freed)."""
    sel = np.asarray(idx, dtype=np.int64)
    return ArrayDataset(
        torch.from_numpy(np.ascontiguousarray(images[sel])),
        torch.from_numpy(np.asarray(labels, dtype=np.int64)[sel]),
        transform,
    )
