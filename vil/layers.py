"""Small building blocks of the mLSTM layer, written for a leading "parameter set" axis.

Direction-specific parameters carry a leading axis ``P`` (1 when a block's directions share
weights, else one set per direction). Activations of a block are laid out (B, K, N, C) with
K directions; a weight with P == 1 broadcasts over K, so separate and shared weights run
through the same batched code, with no Python loop over directions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def small_init_(param: torch.Tensor, dim: int) -> torch.Tensor:
    """ "Small init" normal(std=sqrt(2 / (5 dim))) (Nguyen & Salazar 2019), as in ViL."""
    return nn.init.normal_(param, std=math.sqrt(2 / (5 * dim)))


def wang_init_(param: torch.Tensor, dim: int, num_blocks: int) -> torch.Tensor:
    """ "Wang init" normal(std=2 / num_blocks / sqrt(dim)) for output projections."""
    return nn.init.normal_(param, std=2 / num_blocks / math.sqrt(dim))


def causal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Depthwise causal 1-D conv along tokens (dim -2) of x (B, K, N, C).

    weight (P, C, W), bias (P, C). Written as W shifted multiply-adds: cheap for W=4 and
    free of layout changes (F.conv1d would need (B, C, N) copies of every direction).
    Equals ``F.conv1d`` with ``padding=W-1`` truncated to the first N outputs.
    """
    W, N = weight.size(-1), x.size(-2)
    out = x * weight[:, None, :, W - 1] + bias[:, None, :]
    for shift in range(1, min(W, N)):  # tap W-1-shift looks `shift` tokens back (causal)
        # in-place slice add: F.pad along the token axis is several times slower on CPU
        out[..., shift:, :] += x[..., : N - shift, :] * weight[:, None, :, W - 1 - shift]
    return out


def grid_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    patch_pos: torch.Tensor,
    h: int,
    w: int,
) -> torch.Tensor:
    """Depthwise 3x3 conv over the patch grid (v2 design) of canonical tokens x (B, N, C).

    weight (P, C, 3, 3), bias (P, C) -> (B, P, N, C). Extra tokens (a CLS) are not on the
    grid; they see only themselves (the kernel's centre tap).
    """
    B, N, C = x.shape
    P = weight.size(0)
    grid = x.index_select(1, patch_pos).transpose(1, 2).reshape(B, C, h, w)
    grid = grid.repeat(1, P, 1, 1)  # one copy per parameter set, grouped conv below
    out = F.conv2d(grid, weight.reshape(P * C, 1, 3, 3), bias.reshape(-1), padding=1, groups=P * C)
    out = out.reshape(B, P, C, h * w).transpose(-1, -2)
    full = x.unsqueeze(1) * weight[:, :, 1, 1].unsqueeze(1) + bias.unsqueeze(1)  # extra tokens
    return full.index_copy(2, patch_pos, out)


def headwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Block-diagonal projection: x (B, K, N, C), weight (P, C/bs, out, bs) -> (B, K, N, C*out/bs).

    Each of the C/bs blocks maps its own ``bs`` channels to ``out`` channels (q and k can be
    fused by stacking their blocks along ``out``).
    """
    B, K, N, C = x.shape
    P, nb, out, bs = weight.shape
    xb = x.reshape(B, K, N, nb, bs)
    if P == 1:
        y = torch.einsum("bknhi,hoi->bknho", xb, weight[0])
    else:
        y = torch.einsum("bknhi,khoi->bknho", xb, weight)
    return y.reshape(B, K, N, nb * out)


def per_set_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x (B, K, N, Cin) @ weight (P, Cin, Cout) + bias (P, Cout), P broadcast over K."""
    if weight.size(0) == 1:
        return x @ weight[0] + bias[0]
    return torch.einsum("bkni,kio->bkno", x, weight) + bias[None, :, None, :]


def head_norm(h: torch.Tensor, weight: torch.Tensor, num_heads: int, eps: float = 1e-5):
    """Per-head normalisation (GroupNorm over each head's channels, weight only).

    h (B, K, N, C), weight (P, C).
    """
    B, K, N, C = h.shape
    hn = F.layer_norm(h.reshape(B, K, N, num_heads, C // num_heads), (C // num_heads,), eps=eps)
    return hn.reshape(B, K, N, C) * weight[:, None, :]


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at eval or when p == 0)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty(x.size(0), *([1] * (x.dim() - 1))).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)
