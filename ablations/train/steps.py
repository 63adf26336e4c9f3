"""The pieces of one run: model, data loaders, one optimiser step, evaluation."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from ablations.config import RunConfig
from ablations.train.runtime import Runtime


class TrialFailed(RuntimeError):
    """The run cannot go on (non-finite loss, bad checkpoint, ...); str() is the reason."""


def build_model(cfg: RunConfig, num_classes: int) -> nn.Module:
    """The ViL of ``cfg.model`` for ``cfg.data.img_size`` and ``num_classes``."""
    import vil

    m = cfg.model
    overrides = {k: getattr(m, k) for k in ("dim", "depth") if getattr(m, k) is not None}
    return vil.create_model(
        size=m.size, traversal=m.traversal, pooling=m.pooling, img_size=cfg.data.img_size,
        patch_size=m.patch_size, num_classes=num_classes, design=m.design, init=m.init,
        pretrained=m.pretrained, conv=m.conv, drop_path=m.drop_path, cell=m.cell, **overrides,
    )  # fmt: skip


@dataclass
class Loaders:
    train: DataLoader
    val: DataLoader
    sampler: DistributedSampler | None  # DDP: set_epoch per epoch
    generator: torch.Generator  # single process: reseeded per epoch -> epoch order
    per_rank_batch: int

    def set_epoch(self, seed: int, epoch: int) -> None:
        """Make the epoch's sample order a function of (seed, epoch) only."""
        self.generator.manual_seed(seed * 100_003 + epoch)
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)


def make_loaders(train_set: Any, val_set: Any, cfg: RunConfig, rt: Runtime) -> Loaders:
    """Train loader drops the last partial batch (no recompiles, equal DDP steps)."""
    batch = cfg.train.batch_size
    if batch % rt.world:
        raise TrialFailed(f"train.batch_size {batch} is not divisible by {rt.world} DDP ranks")
    per_rank = batch // rt.world
    if len(train_set) < batch:
        raise TrialFailed(f"the training set ({len(train_set)} images) is smaller than one batch")
    gen = torch.Generator()
    gen.manual_seed(cfg.train.seed)
    common = {
        "num_workers": cfg.data.num_workers,
        "pin_memory": rt.device.type == "cuda",
        "persistent_workers": False,
    }
    sampler = None
    if rt.distributed:
        sampler = DistributedSampler(
            train_set, rt.world, rt.rank, shuffle=True, seed=cfg.train.seed, drop_last=True
        )
    train = DataLoader(
        train_set, batch_size=per_rank, shuffle=sampler is None, sampler=sampler,
        drop_last=True, generator=gen, **common,
    )  # fmt: skip
    val_part = (
        Subset(val_set, range(rt.rank, len(val_set), rt.world)) if rt.distributed else val_set
    )
    val = DataLoader(val_part, batch_size=per_rank, shuffle=False, **common)
    return Loaders(train, val, sampler, gen, per_rank)


def autocast(rt: Runtime) -> contextlib.AbstractContextManager:
    """bf16 autocast where the runtime says so, else nothing."""
    if rt.precision == "bf16":
        return torch.autocast(rt.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, smoothing: float
) -> torch.Tensor:
    """Cross-entropy with soft (mixed) targets, optionally label-smoothed, in fp32."""
    if smoothing:
        targets = targets * (1 - smoothing) + smoothing / targets.size(-1)
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def mean_over_ranks(value: torch.Tensor, rt: Runtime) -> torch.Tensor:
    if rt.distributed:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= rt.world
    return value


def train_step(
    parts: Any, images: torch.Tensor, labels: torch.Tensor, cfg: RunConfig, step: int
) -> float:
    """One optimiser step; returns the (rank-averaged) loss. Raises on a non-finite loss."""
    rt, tc = parts.rt, cfg.train
    images = images.to(rt.device, non_blocking=True)
    labels = labels.to(rt.device, non_blocking=True)
    images, targets = parts.mixer(images, labels)
    with autocast(rt):
        logits = parts.step_model(images)
    loss = soft_cross_entropy(logits, targets.to(logits.device), tc.label_smoothing)
    if tc.inject_nan_at_step is not None and step == tc.inject_nan_at_step:
        loss = loss * float("nan")  # test hook (see TrainConfig.inject_nan_at_step)
    value = float(mean_over_ranks(loss.detach(), rt))
    if not math.isfinite(value):
        raise TrialFailed(f"non-finite loss ({value}) at step {step}")
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if tc.grad_clip:
        nn.utils.clip_grad_norm_(parts.model.parameters(), tc.grad_clip)
    parts.optimizer.step()
    parts.scheduler.step()
    return value


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, rt: Runtime) -> dict[str, float]:
    """Top-1 / top-5 accuracy (percent) and mean cross-entropy over the whole val set."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=rt.device)  # loss, top1, top5, n
    for images, labels in loader:
        images, labels = images.to(rt.device), labels.to(rt.device)
        with autocast(rt):
            logits = model(images)
        logits = logits.float()
        k = min(5, logits.size(-1))
        hit = logits.topk(k, dim=-1).indices.eq(labels.unsqueeze(1))
        sums[0] += F.cross_entropy(logits, labels, reduction="sum").double()
        sums[1] += hit[:, :1].any(dim=1).sum()
        sums[2] += hit.any(dim=1).sum()
        sums[3] += labels.numel()
    if rt.distributed:
        dist.all_reduce(sums)
    model.train(was_training)
    n = max(float(sums[3]), 1.0)
    return {
        "val_loss": float(sums[0]) / n,
        "val_top1": 100.0 * float(sums[1]) / n,
        "val_top5": 100.0 * float(sums[2]) / n,
    }
