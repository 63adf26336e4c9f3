"""The train/val DataLoaders of one run: persistent, prefetching workers, deterministic order.

Augmentation must not depend on where a sample is loaded: in this process
(``data.num_workers=0``) or in any of N worker processes, each with its own RNG (persistent
workers would even carry it from one epoch into the next, so a resumed run would augment
differently). So the sampler hands out ``(index, seed)`` pairs and each sample is augmented
under its own seed, a function of (run seed, epoch, position) only: the images are the same
for any number of workers, 0 included, and whether the run was resumed or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler, Subset

from ablations.schema.config import RunConfig, per_rank_batch
from ablations.train.runtime import Runtime
from ablations.train.steps import TrialFailed


def sample_seed_base(seed: int, epoch: int) -> int:
    """First per-sample seed of an epoch (sample k of the epoch gets base + k)."""
    state = np.random.SeedSequence([seed, epoch, 0, 1]).generate_state(1, np.uint64)[0]
    return int(state >> 2)  # leaves room for + position below 2**63


class SeededSampler(Sampler):
    """Wraps an index sampler; yields ``(index, seed)`` with seed = epoch base + the sample's
    position in the epoch's global order. Under DDP rank r's k-th sample sits at position
    r + k * world (DistributedSampler's interleaving): ranks never share a seed, so two
    images are never augmented with the same draws."""

    def __init__(self, inner: Sampler, seed: int, rank: int = 0, world: int = 1) -> None:
        self.inner, self.seed, self.epoch = inner, seed, 0
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        base = sample_seed_base(self.seed, self.epoch)
        for k, index in enumerate(self.inner):
            yield index, base + self.rank + k * self.world


class SeededDataset(Dataset):
    """``dataset[(index, seed)]``: the sample ``index`` augmented under its own seed.

    The caller's RNG state is put back afterwards: in this process (no workers) the loop's
    per-step seed then still drives Mixup/CutMix and drop path, exactly as with workers.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        # The CPU generator only (augmentation runs on the CPU): torch.manual_seed would also
        # reseed CUDA's, which drop path draws from in this process. (fork_rng: 3x slower.)
        rng = torch.default_generator
        state = rng.get_state()
        try:
            rng.manual_seed(seed)
            return self.dataset[index]
        finally:
            rng.set_state(state)


@dataclass
class Loaders:
    train: DataLoader
    val: DataLoader
    sampler: Sampler  # the train sampler: set_epoch per epoch where it has one
    generator: torch.Generator  # single process: reseeded per epoch -> epoch order
    per_rank_batch: int

    def set_epoch(self, seed: int, epoch: int) -> None:
        """Make the epoch's sample order a function of (seed, epoch) only."""
        self.generator.manual_seed(seed * 100_003 + epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


def _worker_options(cfg: RunConfig, rt: Runtime, persistent: bool) -> dict[str, Any]:
    workers = cfg.data.num_workers
    opts: dict[str, Any] = {"num_workers": workers, "pin_memory": rt.device.type == "cuda"}
    if workers:  # spawned once per run, each keeps train.prefetch batches ready
        opts.update(persistent_workers=persistent, prefetch_factor=cfg.train.prefetch)
    return opts


def make_loaders(train_set: Any, val_set: Any, cfg: RunConfig, rt: Runtime) -> Loaders:
    """Train loader drops the last partial batch (no recompiles, equal DDP steps)."""
    batch = cfg.train.batch_size
    if batch % rt.world:
        raise TrialFailed(f"train.batch_size {batch} is not divisible by {rt.world} DDP ranks")
    per_rank = per_rank_batch(cfg.train, rt.world)
    if len(train_set) < batch:
        raise TrialFailed(f"the training set ({len(train_set)} images) is smaller than one batch")
    gen = torch.Generator()
    gen.manual_seed(cfg.train.seed)
    sampler: Sampler
    if rt.distributed:
        sampler = DistributedSampler(
            train_set, rt.world, rt.rank, shuffle=True, seed=cfg.train.seed, drop_last=True
        )
    else:
        sampler = RandomSampler(train_set, generator=gen)
    sampler = SeededSampler(sampler, cfg.train.seed, rt.rank, rt.world)
    train_set = SeededDataset(train_set)
    # The loader draws a worker base seed from its generator each time it starts an iterator
    # (not on a persistent worker's later epochs, and again in a resumed process): kept
    # apart from the order's generator, whose epoch order would otherwise depend on both.
    own = torch.Generator().manual_seed(cfg.train.seed)
    train = DataLoader(
        train_set, batch_size=per_rank, sampler=sampler, drop_last=True, generator=own,
        **_worker_options(cfg, rt, persistent=True),
    )  # fmt: skip
    val_part = (
        Subset(val_set, range(rt.rank, len(val_set), rt.world)) if rt.distributed else val_set
    )
    # Evaluation runs every eval_every epochs: its workers are not kept alive in between.
    val = DataLoader(
        val_part, batch_size=per_rank, shuffle=False, **_worker_options(cfg, rt, False)
    )
    return Loaders(train, val, sampler, gen, per_rank)
