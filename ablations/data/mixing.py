"""Batch-level Mixup / CutMix producing soft targets (the paper: alpha 0.8 / 1.0, p 0.5 each).

Written here rather than with ``torchvision.transforms.v2.MixUp/CutMix`` because those draw
from the global RNG only; this one takes an optional ``torch.Generator`` and otherwise uses
the global torch RNG, so it is deterministic under ``torch.manual_seed`` either way.
Per batch exactly one of {Mixup, CutMix, nothing} happens, with probabilities
``mixup_prob``, ``cutmix_prob`` and the rest; a method with alpha 0 never happens.
The batch is mixed with itself rolled by one (as torchvision does).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ablations.schema.data_config import DataConfig

BatchMixer = Callable[..., tuple[Tensor, Tensor]]


def _uniform(generator: torch.Generator | None) -> float:
    return float(torch.rand((), generator=generator))


def _beta(alpha: float, generator: torch.Generator | None) -> float:
    # torch's Beta sampler cannot take a generator: derive a numpy seed from the torch RNG.
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _cutmix_box(h: int, w: int, lam: float, generator: torch.Generator | None) -> tuple:
    """A random box of area (1 - lam) * h * w (clipped at the borders, as in CutMix)."""
    ratio = float(np.sqrt(1.0 - lam))
    ch, cw = int(h * ratio), int(w * ratio)
    cy = int(torch.randint(0, h, (), generator=generator))
    cx = int(torch.randint(0, w, (), generator=generator))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    return y0, y1, x0, x1


def make_batch_mixer(cfg: DataConfig, num_classes: int) -> BatchMixer:
    """Return ``mix(images, labels, generator=None) -> (images, soft targets (B, C))``."""
    use_mixup = cfg.mixup_alpha > 0 and cfg.mixup_prob > 0
    use_cutmix = cfg.cutmix_alpha > 0 and cfg.cutmix_prob > 0
    p_mixup = cfg.mixup_prob if use_mixup else 0.0
    p_cutmix = cfg.cutmix_prob if use_cutmix else 0.0

    def mix(
        images: Tensor, labels: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Mix one batch; labels are int class indices, targets sum to 1 per row."""
        target = F.one_hot(labels.long(), num_classes).to(
            images.dtype if images.is_floating_point() else torch.float32
        )
        if not (use_mixup or use_cutmix) or images.shape[0] < 2:
            return images, target
        u = _uniform(generator)
        if u < p_mixup:
            lam = _beta(cfg.mixup_alpha, generator)
            images = images * lam + images.roll(1, 0) * (1.0 - lam)
        elif u < p_mixup + p_cutmix:
            lam = _beta(cfg.cutmix_alpha, generator)
            h, w = images.shape[-2:]
            y0, y1, x0, x1 = _cutmix_box(h, w, lam, generator)
            images = images.clone()
            images[..., y0:y1, x0:x1] = images.roll(1, 0)[..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)  # the box may be clipped
        else:
            return images, target
        return images, target * lam + target.roll(1, 0) * (1.0 - lam)

    return mix
