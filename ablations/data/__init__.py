"""Data for the ablations: ImageNet-100 / image folders (with a uint8 cache) and a synthetic task.

Public API: ``DataConfig``, ``build_datasets``, ``make_batch_mixer``, ``prepare_cache``,
``DATASETS``. Datasets yield ``(float tensor (3, H, W) normalised, int label)``.
"""

from .build import DataBundle, build_datasets, prepare_cache
from .config import AUGMENTS, CLASS_LISTS, DATASETS, DataConfig, DataConfigError
from .imagefolder import BadImageError
from .mixing import make_batch_mixer

__all__ = [
    "AUGMENTS",
    "CLASS_LISTS",
    "DATASETS",
    "BadImageError",
    "DataBundle",
    "DataConfig",
    "DataConfigError",
    "build_datasets",
    "make_batch_mixer",
    "prepare_cache",
]
