"""What a run's data were: ``DataProvenance`` (``DataBundle.info``) and ``DataSummary``.

``DataProvenance.to_dict()`` has the same keys for every dataset kind, so the run record
and the report read one format:

- ``dataset``, ``root`` (resolved folder, or None for generated data), ``class_list``
  (imagenet100: list name or file; else None), ``class_names`` (index -> name),
  ``class_to_idx``;
- ``split`` ("standard" | "tune"), ``val_source`` ("val", or "train" when held out of the
  training split), ``data_seed``;
- ``counts`` ({"train": n, "val": n}), ``train_per_class`` / ``val_per_class`` (class ->
  images), ``val_missing_classes`` (classes without val images), ``chance_top1`` (100 / K);
- ``skipped`` ([{path, reason, split}]: files not used), ``num_skipped``;
- ``img_size``, ``augment``, ``cache`` ({path, key, built_now} or None when not cached),
  ``stored_size`` (cached training side, or None), ``val_labels`` (where val labels came
  from, or None), ``runtime_skipped`` ({split: live list of files that failed to decode
  while iterating} without a cache, else None).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class DataProvenance:
    """The data of one run (see the module docstring for the meaning of each key)."""

    dataset: str  # registry name (data.dataset)
    root: str | None  # resolved dataset folder; None = generated in memory
    class_list: str | None  # imagenet100's list name or file; None for the other kinds
    class_names: list[str]  # class index -> name
    split: str  # "standard" | "tune"
    val_source: str  # "val" (the val split) | "train" (held out of the training split)
    data_seed: int  # seeds subsets, the tune split and the synthetic generator
    train_per_class: dict[str, int]  # class -> training images used
    val_per_class: dict[str, int]  # class -> validation images used
    img_size: int  # training / eval resolution
    augment: str  # data.augment preset
    skipped: list[dict] = field(default_factory=list)  # {path, reason, split}
    cache: dict | None = None  # {path, key, built_now}; None = not cached
    stored_size: int | None = None  # side of cached training images; None = not cached
    val_labels: str | None = None  # source of val labels (class folders, a label file)
    runtime_skipped: dict | None = None  # decoding without cache: {split: live list}

    @property
    def counts(self) -> dict[str, int]:
        return {
            "train": sum(self.train_per_class.values()),
            "val": sum(self.val_per_class.values()),
        }

    @property
    def chance_top1(self) -> float:
        """Top-1 (%) of guessing: 100 / number of classes."""
        return 100.0 / len(self.class_names)

    def to_dict(self) -> dict:
        """Plain dict with every key (lists are shared, not copied: runtime_skipped is live)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(
            class_to_idx={c: i for i, c in enumerate(self.class_names)},
            counts=self.counts,
            num_skipped=len(self.skipped),
            chance_top1=self.chance_top1,
            val_missing_classes=[c for c, n in self.val_per_class.items() if n == 0],
        )
        return out


@dataclass(frozen=True)
class DataSummary:
    """What ``describe`` finds without decoding: enough to check a config before training."""

    dataset: str  # registry name
    root: str | None  # resolved dataset folder; None = generated
    num_classes: int  # classes the model will predict
    class_names: list[str]  # index -> name
    train_images: int  # training images the run would use (after subsets / tune split)
    val_images: int  # validation images the run would use
