"""Data for the ablations: real datasets (with a uint8 cache) and a synthetic task.

Public API: ``DataConfig``, ``build_datasets``, ``describe``, ``make_batch_mixer``,
``prepare_cache``, ``KINDS`` / ``register_dataset`` (the dataset registry, in
ablations/schema/datasets.py),
``DataProvenance`` (the keys of ``DataBundle.info``) and ``DataSummary``. Datasets yield
``(float tensor (3, H, W) normalised, int label)``.
"""

from ablations.schema.data_config import AUGMENTS, CLASS_LISTS, SPLITS, DataConfig
from ablations.schema.datasets import KINDS, DatasetKind, register_dataset
from ablations.schema.errors import DataConfigError

from .build import DataBundle, build_datasets, prepare_cache
from .describe import describe
from .imagefolder import BadImageError
from .mixing import make_batch_mixer
from .provenance import DataProvenance, DataSummary

__all__ = [
    "AUGMENTS",
    "CLASS_LISTS",
    "KINDS",
    "DatasetKind",
    "register_dataset",
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
