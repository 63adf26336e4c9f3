"""Position embeddings onto another patch grid (published 224 px weights at 128 px, say).

The embedding is a picture over the patch grid, one channel per feature: it is resampled as
one, bicubic and antialiased on the explicit (rows, cols) grids, as timm's
``resample_abs_pos_embed`` does. Grids are always given as (h, w), never found by a square
root of the token count: images need not be square.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

log = logging.getLogger("vil")


def resample_pos_embed(embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``(1, H, W, D)`` on an H x W patch grid -> ``(1, h, w, D)`` for ``grid = (h, w)``."""
    if embed.dim() != 4 or embed.size(0) != 1:
        raise ValueError(f"a position embedding of shape (1, H, W, D), not {tuple(embed.shape)}")
    h, w = grid
    if tuple(embed.shape[1:3]) == (h, w):
        return embed
    planes = embed.float().permute(0, 3, 1, 2)  # (1, D, H, W): one image per feature
    out = F.interpolate(planes, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    return out.permute(0, 2, 3, 1).to(embed.dtype)


def notice(what: str, old: tuple[int, ...], new: tuple[int, int]) -> None:
    """The one line a resampled embedding is announced with."""
    log.warning(
        "%s resampled from the %dx%d patch grid to the model's %dx%d (bicubic, antialiased)",
        what, old[0], old[1], new[0], new[1],
    )  # fmt: skip
