"""The pieces of one run: model, data loaders, one optimiser step, evaluation."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import vil
from ablations.schema.config import RunConfig
from ablations.schema.record import encode_correct
from ablations.train.runtime import Runtime


class TrialFailed(RuntimeError):
    """The run cannot go on (non-finite loss, bad checkpoint, ...); str() is the reason."""


def build_model(cfg: RunConfig, num_classes: int) -> nn.Module:
    """The ViL of ``cfg.model`` for ``cfg.data.img_size`` and ``num_classes``."""
    return vil.create_model(cfg.model, img_size=cfg.data.img_size, num_classes=num_classes)


def model_cost(cfg: RunConfig, num_classes: int, cache: dict | None = None) -> tuple[int, float]:
    """(parameters, forward FLOPs of one image) of the run's model (built on the CPU);
    ``cache``: the caller's, keyed by the model setting (one build per distinct model)."""
    key = (repr(cfg.model), cfg.data.img_size, num_classes)
    if cache is not None and key in cache:
        return cache[key]
    model = build_model(cfg, num_classes)
    cost = vil.count_params(model), vil.count_flops(model, cfg.data.img_size)
    if cache is not None:
        cache[key] = cost
    return cost


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


def micro_slices(batch: int, micro_batch: int | None) -> list[slice]:
    """The micro-batches of a per-rank batch. ``train.micro_batch`` is validated once, in
    config.validate (it divides the per-rank batch; the loaders drop the last partial batch)."""
    size = micro_batch or batch
    return [slice(a, min(a + size, batch)) for a in range(0, batch, size)]


def _sync_grads_on(ddp: nn.Module | None, last: bool) -> contextlib.AbstractContextManager:
    """DDP: all-reduce gradients only in the backward pass of the last micro-batch."""
    if last or ddp is None:
        return contextlib.nullcontext()
    return ddp.no_sync()


class StepParts(Protocol):
    """What ``train_step`` uses of a run's parts (train.loop.Parts, measure.step_parts);
    optional, read with getattr: ``augment`` (device augmentation) and ``ddp``."""

    rt: Runtime
    model: nn.Module  # the plain model: its parameters are clipped
    step_model: nn.Module  # what the step calls (DDP- and/or compile-wrapped)
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a torch LR scheduler: step() once per optimiser step
    mixer: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def train_step(
    parts: StepParts, images: torch.Tensor, labels: torch.Tensor, cfg: RunConfig, step: int
) -> torch.Tensor:
    """One optimiser step over this rank's batch, in ``train.micro_batch`` pieces when set.

    Returns this rank's mean loss as a detached tensor on the device, without reading it:
    no host sync here (the loop checks finiteness at its cadence, see tally.Tally). The
    micro-batch losses are weighted by their share of the batch, so the gradient is the
    whole batch's (Mixup/CutMix mix the whole batch first, as without accumulation).
    """
    rt, tc = parts.rt, cfg.train
    images = images.to(rt.device, non_blocking=True)
    labels = labels.to(rt.device, non_blocking=True)
    if getattr(parts, "augment", None) is not None:  # uint8 in, 4x less host->device traffic
        images = parts.augment(images)
    images, targets = parts.mixer(images, labels)
    parts.optimizer.zero_grad(set_to_none=True)
    batch = images.size(0)
    pieces = micro_slices(batch, tc.micro_batch)
    total = torch.zeros((), device=rt.device)
    for k, part in enumerate(pieces):
        share = (part.stop - part.start) / batch  # 1 / len(pieces) when they divide it
        with _sync_grads_on(getattr(parts, "ddp", None), k == len(pieces) - 1):
            with autocast(rt):
                logits = parts.step_model(images[part])
            loss = soft_cross_entropy(logits, targets[part].to(logits.device), tc.label_smoothing)
            if tc.inject_nan_at_step is not None and step == tc.inject_nan_at_step:
                loss = loss * float("nan")  # test hook (see TrainConfig.inject_nan_at_step)
            (loss * share).backward()
        total += loss.detach() * share
    if tc.grad_clip:
        nn.utils.clip_grad_norm_(parts.model.parameters(), tc.grad_clip)
    parts.optimizer.step()
    parts.scheduler.step()
    return total


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, rt: Runtime) -> dict[str, Any]:
    """Top-1 / top-5 accuracy (percent) and mean cross-entropy over the whole val set, and
    ``val_correct``: which images (in the val set's order) were right at top-1, as
    ``record.encode_correct`` (gathered on the device, moved to the host once at the end)."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=rt.device)  # loss, top1, top5, n
    right: list[torch.Tensor] = []
    for images, labels in loader:
        images, labels = images.to(rt.device), labels.to(rt.device)
        with autocast(rt):
            logits = model(images)
        logits = logits.float()
        k = min(5, logits.size(-1))
        hit = logits.topk(k, dim=-1).indices.eq(labels.unsqueeze(1))
        right.append(hit[:, 0])
        sums[0] += F.cross_entropy(logits, labels, reduction="sum").double()
        sums[1] += hit[:, :1].any(dim=1).sum()
        sums[2] += hit.any(dim=1).sum()
        sums[3] += labels.numel()
    mine = torch.cat(right) if right else torch.zeros(0, dtype=torch.bool, device=rt.device)
    if rt.distributed:
        dist.all_reduce(sums)
        mine = _gather_strided(mine, rt.world)
    model.train(was_training)
    n = max(float(sums[3]), 1.0)
    return {
        "val_loss": float(sums[0]) / n,
        "val_top1": 100.0 * float(sums[1]) / n,
        "val_top5": 100.0 * float(sums[2]) / n,
        "val_correct": encode_correct(mine.cpu().numpy()),
    }


def _gather_strided(mine: torch.Tensor, world: int) -> torch.Tensor:
    """Every rank's correctness in the val set's order: rank r evaluated images r, r + W, ...
    (the val loader's strided Subset), so image i is entry i // W of rank i % W."""
    size = torch.tensor([mine.numel()], device=mine.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=torch.uint8, device=mine.device)
    padded[: mine.numel()] = mine.to(torch.uint8)
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    total = int(sum(s.item() for s in sizes))
    return torch.stack(parts, dim=1).reshape(-1)[:total].bool()
