"""Data for the ablations: real datasets (with a uint8 cache) and a synthetic task.

Public API: ``DataConfig``, ``build_datasets``, ``describe``, ``make_batch_mixer``,
``prepare_cache``, ``DATASETS`` (the registry's names, ``registry.KINDS``),
``DataProvenance`` (the keys of ``DataBundle.info``) and ``DataSummary``. Datasets yield
``(float tensor (3, H, W) normalised, int label)``.
"""

from .build import DataBundle, build_datasets, prepare_cache
from .config import AUGMENTS, CLASS_LISTS, DATASETS, SPLITS, DataConfig, DataConfigError
from .describe import describe
from .imagefolder import BadImageError
from .mixing import make_batch_mixer
from .provenance import DataProvenance, DataSummary

__all__ = [
    "AUGMENTS",
    "CLASS_LISTS",
    "DATASETS",
    "SPLITS",
    "BadImageError",
    "DataBundle",
    "DataConfig",
    "DataConfigError",
    "DataProvenance",
    "DataSummary",
    "build_datasets",
    "describe",
    "make_batch_mixer",
    "prepare_cache",
]
