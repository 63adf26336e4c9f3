"""The data configuration (one dataclass) and its validation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ablations.schema.datasets import CLASS_LIST_SIZES, KINDS
from ablations.schema.errors import DataConfigError

AUGMENTS = ["paper", "light", "none"]
AUGMENT_ON = ["workers", "device"]  # "device": deviceaug.DeviceAugment on uint8 cache batches
CLASS_LISTS = list(CLASS_LIST_SIZES)  # "vil", "cmc"; or a path to a file of wnids
SPLITS = ["standard", "tune"]

# The cache stores training images as squares of side floor(img_size / CACHE_CROP_PCT):
# 146 px for 128, 256 for 224 (timm's crop_pct 0.875 convention, i.e. about 1.143x), which
# leaves room for RandomResizedCrop / shifts to pick sub-regions without upsampling.
CACHE_CROP_PCT = 0.875


@dataclass
class DataConfig:
    """Everything that decides which images a run sees and how they are augmented."""

    dataset: str = "synthetic"  # a registry name (schema.datasets.KINDS): synthetic, cifar100, ...
    root: str | None = None  # dataset folder (its layout: KINDS[dataset].layout)
    download: bool = False  # cifar10/100: fetch into root when missing (else read only)
    class_list: str = "vil"  # imagenet100: "vil" (first 100 sorted), "cmc", or a wnid file
    img_size: int = 128  # training/eval resolution (square)
    num_classes: int = 100  # synthetic only: number of classes
    train_samples: int = 20000  # synthetic only: training images (balanced over classes)
    val_samples: int = 2000  # synthetic only: validation images (20 per class: cheap eval)
    data_seed: int = 0  # synthetic generation; subsets and the tune split (same -> same)
    train_per_class: int | None = None  # at most this many train images a class; None = all
    val_per_class: int | None = None  # at most this many val images a class; None = all
    split: str = "standard"  # "standard" (train / val) | "tune" (val held out of train)
    tune_fraction: float = 0.1  # split="tune": share of each class's train images held out
    augment: str = "paper"  # "paper" (ViL recipe), "light" (small shifts), "none"
    mixup_alpha: float = 0.8  # Mixup Beta(alpha, alpha); 0 disables Mixup
    cutmix_alpha: float = 1.0  # CutMix Beta(alpha, alpha); 0 disables CutMix
    mixup_prob: float = 0.5  # per batch: chance of Mixup
    cutmix_prob: float = 0.5  # per batch: chance of CutMix (rest of the mass: no mixing)
    cache: bool = True  # image folders: decode+resize once into a uint8 memmap store
    cache_dir: str | None = None  # None: $XDG_CACHE_HOME/vil-ablate or ~/.cache/vil-ablate
    num_workers: int = 0  # DataLoader workers (and cache-build processes)
    strict: bool = False  # bad single images raise instead of being skipped and counted
    augment_on: str = "workers"  # train augmentation: "workers" (CPU loader) | "device" (GPU)
    label_noise: float = 0.0  # share of training labels replaced by another class drawn at
    # random from data_seed (the same labels for every run seed): a planted effect (calibrate)

    @property
    def stored_size(self) -> int:
        """Side of the square training images in the cache (see CACHE_CROP_PCT)."""
        return math.floor(self.img_size / CACHE_CROP_PCT + 1e-9)

    def validate(self) -> DataConfig:
        """Raise DataConfigError (one line, naming key, value and choices) on bad settings."""
        _choice("dataset", self.dataset, list(KINDS))
        _choice("augment", self.augment, AUGMENTS)
        _choice("split", self.split, SPLITS)
        kind = KINDS[self.dataset]
        if kind.layout and not self.root:
            raise DataConfigError(
                f"data.root is required for dataset {self.dataset!r} (a folder with {kind.layout})"
            )
        if self.download and not kind.can_download:
            can = [k.name for k in KINDS.values() if k.can_download]
            raise DataConfigError(
                f"data.download=True: dataset {self.dataset!r} cannot be downloaded "
                f"(only {', '.join(can)}); put its files in data.root"
            )
        self._validate_subsets()
        if self.dataset == "imagenet100" and self.class_list not in CLASS_LISTS:
            if not Path(self.class_list).expanduser().is_file():
                raise DataConfigError(
                    f"data.class_list={self.class_list!r} is neither one of "
                    f"{CLASS_LISTS} nor an existing file of wnids"
                )
        _positive("img_size", self.img_size, minimum=8)
        if self.dataset == "synthetic":
            _positive("num_classes", self.num_classes, minimum=2)
            _positive("train_samples", self.train_samples, minimum=1)
            _positive("val_samples", self.val_samples, minimum=1)
        for key in ("mixup_alpha", "cutmix_alpha", "mixup_prob", "cutmix_prob"):
            if getattr(self, key) < 0:
                raise DataConfigError(f"data.{key}={getattr(self, key)!r} must be >= 0")
        if self.mixup_prob + self.cutmix_prob > 1 + 1e-9:
            raise DataConfigError(
                f"data.mixup_prob + data.cutmix_prob = {self.mixup_prob + self.cutmix_prob:g} "
                "must be <= 1 (one of them, or none, is applied per batch)"
            )
        _choice("augment_on", self.augment_on, AUGMENT_ON)
        if self.augment_on == "device" and (
            self.dataset == "synthetic" or not self.cache or self.augment != "paper"
        ):
            raise DataConfigError(
                "data.augment_on='device' needs the uint8 cache and the paper recipe "
                f"(data.dataset={self.dataset!r}, data.cache={self.cache}, "
                f"data.augment={self.augment!r}); valid otherwise: augment_on='workers'"
            )
        noise = self.label_noise
        if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 <= noise < 1:
            raise DataConfigError(
                f"data.label_noise={noise!r} must be a number in [0, 1) (the share of training "
                "labels replaced; 0 = none)"
            )
        if self.num_workers < 0:
            raise DataConfigError(f"data.num_workers={self.num_workers!r} must be >= 0")
        return self

    def _validate_subsets(self) -> None:
        for key in ("train_per_class", "val_per_class"):
            value = getattr(self, key)
            if value is not None:
                _positive(key, value, minimum=1)
                if self.dataset == "synthetic":
                    raise DataConfigError(
                        f"data.{key}={value!r}: not for dataset 'synthetic' "
                        "(set data.train_samples / data.val_samples)"
                    )
        ok = isinstance(self.tune_fraction, int | float) and not isinstance(
            self.tune_fraction, bool
        )
        if not ok or not 0 < self.tune_fraction < 1:
            raise DataConfigError(
                f"data.tune_fraction={self.tune_fraction!r} must be a number in (0, 1)"
            )


def _choice(key: str, value: object, valid: list[str]) -> None:
    if value not in valid:
        raise DataConfigError(f"unknown data.{key}={value!r}; valid: {', '.join(valid)}")


def _positive(key: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise DataConfigError(f"data.{key}={value!r} must be an integer >= {minimum}")
