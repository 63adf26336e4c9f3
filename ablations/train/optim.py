"""AdamW with the paper's parameter groups and a per-step warm-up + cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from ablations.schema.config import TrainConfig

# Parameters without weight decay: biases, norm weights, the per-channel skip, position
# embedding and CLS token. ViL stacks the per-direction parameters along a leading "set"
# axis, so e.g. ``conv_bias`` is (sets, inner): what matters is the role, not ``ndim``; every
# parameter that would be 1-D in an unstacked layer is matched by name here.
NO_DECAY_SUFFIXES = ("bias", "norm_weight", "skip", "pos_embed", "cls_token")


def decays(name: str, param: torch.Tensor) -> bool:
    """Whether weight decay applies to parameter ``name``."""
    return param.ndim > 1 and not name.split(".")[-1].endswith(NO_DECAY_SUFFIXES)


def peak_lr(cfg: TrainConfig) -> float:
    """``lr`` is given at batch 1024 and scaled linearly with the global batch."""
    return cfg.lr * cfg.batch_size / 1024


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over two groups: with and without weight decay (see NO_DECAY_SUFFIXES)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if decays(name, p) else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=peak_lr(cfg), betas=tuple(cfg.betas))


class WarmupCosine:
    """lr factor per optimiser step: linear warm-up to 1, then cosine down to min_lr / peak.

    A plain callable object so ``LambdaLR.state_dict()`` stores its settings with the step.
    """

    def __init__(self, warmup_steps: int, total_steps: int, floor: float) -> None:
        self.warmup_steps = warmup_steps
        self.total_steps = max(total_steps, 1)
        self.floor = floor

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule over ``epochs * steps_per_epoch`` steps."""
    total = cfg.epochs * steps_per_epoch
    warmup = min(round(cfg.warmup_epochs * steps_per_epoch), total)
    floor = cfg.min_lr / peak_lr(cfg) if peak_lr(cfg) > 0 else 0.0
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup, total, floor))
