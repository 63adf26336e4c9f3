"""``describe(cfg)``: a cheap look at a dataset before the first trial (and for --dry-run).

File datasets are scanned (folder listings and file sizes: no decoding, no cache), CIFAR's
labels are read from its pickles, and the synthetic task reports its configured sizes. The
counts are those the run would use: subsets and the tune split applied.
"""

from __future__ import annotations

from ablations.schema.data_config import DataConfig
from ablations.schema.datasets import KINDS

from .build import entry_function, scan_selected
from .provenance import DataSummary
from .split import select
from .synthetic import class_names, labels_of


def describe(cfg: DataConfig) -> DataSummary:
    """Classes and split sizes of ``cfg``'s data; ``DataConfigError`` for a bad copy."""
    cfg.validate()
    kind = KINDS[cfg.dataset]
    if kind.family == "files":
        found, _ = scan_selected(cfg)
        classes, root = found.classes, found.root
        n_train, n_val = len(found.train.samples), len(found.val.samples)
    else:
        if cfg.dataset == "synthetic":  # labels are i % K: nothing to generate
            classes, root = class_names(cfg.num_classes), None
            labels = (labels_of(n, cfg.num_classes) for n in (cfg.train_samples, cfg.val_samples))
            train_labels, val_labels = labels
        else:
            arrays = entry_function(kind)(cfg)
            classes, root = arrays.classes, arrays.root
            train_labels, val_labels = arrays.train_labels, arrays.val_labels
        train_idx, val_idx, _ = select(cfg, train_labels, val_labels)
        n_train, n_val = len(train_idx), len(val_idx)
    return DataSummary(cfg.dataset, root, len(classes), list(classes), n_train, n_val)
