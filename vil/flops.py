"""Parameter and FLOP counting.

Convention: one multiply-add = 2 FLOPs, counted by ``torch.utils.flop_counter`` over the
matrix products and convolutions of one image's forward pass (element-wise work such as
gate activations, exponentials and norms is not counted, as in the usual ViT/ViL FLOP
tables). Counted with ``plain=True``: the architecture's products, not the zero blocks and
folded gates the fast path multiplies.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, img_size: int | tuple[int, int] | None = None) -> float:
    """FLOPs of one image's forward pass (2 FLOPs per multiply-add)."""
    cfg = getattr(model, "cfg", None)
    if img_size is None:
        img_size = cfg.img_size
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    in_chans = cfg.in_chans if cfg is not None else 3
    p = next(model.parameters())
    x = torch.zeros(1, in_chans, h, w, device=p.device, dtype=p.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x, plain=True)
    finally:
        model.train(was_training)
    return float(counter.get_total_flops())
