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


def heads_to_tokens(h: torch.Tensor, batch: int) -> torch.Tensor:
    """(B*K, NH, N, DH) head-major -> (B, K, N, NH*DH) token-major."""
    BK, NH, N, DH = h.shape
    return h.view(batch, BK // batch, NH, N, DH).transpose(2, 3).reshape(batch, -1, N, NH * DH)


def small_init_(param: torch.Tensor, dim: int) -> torch.Tensor:
    """ "Small init" normal(std=sqrt(2 / (5 dim))) (Nguyen & Salazar 2019), as in ViL."""
    return nn.init.normal_(param, std=math.sqrt(2 / (5 * dim)))


def wang_init_(param: torch.Tensor, dim: int, num_blocks: int) -> torch.Tensor:
    """ "Wang init" normal(std=2 / num_blocks / sqrt(dim)) for output projections."""
    return nn.init.normal_(param, std=2 / num_blocks / math.sqrt(dim))


def causal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Depthwise causal 1-D conv along tokens (dim -2) of x (B, K, N, C).

    weight (P, C, W), bias (P, C). Equals ``F.conv1d`` with ``padding=W-1`` truncated to the
    first N outputs, run as W shifted multiply-adds in the (B, K, N, C) layout (F.conv1d
    would need (B, C, N) copies of every direction) with a hand-written backward: autograd
    of the in-place slice adds zero-fills and copies every slice, 2x slower on CPU.
    """
    return _CausalConv.apply(x, weight, bias)


def _shifted_madd(out: torch.Tensor, x: torch.Tensor, taps: torch.Tensor, sign: int) -> None:
    """out[n] += x[n - sign*s] * taps[s] for s = 1..S-1, in place (taps (P, C, S))."""
    N = x.size(-2)
    for s in range(1, min(taps.size(-1), N)):  # addcmul_: one pass, no product temporary
        if sign > 0:  # forward: look s tokens back
            out[..., s:, :].addcmul_(x[..., : N - s, :], taps[:, None, :, s])
        else:  # backward: gradient flows s tokens forward
            out[..., : N - s, :].addcmul_(x[..., s:, :], taps[:, None, :, s])


class _CausalConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        taps = weight.flip(-1)  # taps[s] multiplies the token s steps back
        out = torch.addcmul(bias[:, None, :], x, taps[:, None, :, 0])
        _shifted_madd(out, x, taps, +1)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        taps, N = weight.flip(-1), x.size(-2)
        dx = grad * taps[:, None, :, 0]
        _shifted_madd(dx, grad, taps, -1)
        P = weight.size(0)  # sum over batch and tokens; over directions too if shared
        cols = [sum_to_sets(grad * x, P)]
        cols += [
            sum_to_sets(grad[..., s:, :] * x[..., : N - s, :], P) for s in range(1, taps.size(-1))
        ]
        cols += [torch.zeros_like(cols[0])] * (taps.size(-1) - len(cols))  # W > N
        dweight = torch.stack(cols[::-1], dim=-1)
        return dx, dweight, sum_to_sets(grad, P)


def grid_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    patch_pos: torch.Tensor,
    h: int,
    w: int,
) -> torch.Tensor:
    """Depthwise 3x3 conv over the patch grid (v2 release) of canonical tokens x (B, N, C).

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


def headwise_group(blocks_per_head: int, block: int, width: int = 32) -> int:
    """How many blocks :func:`headwise` multiplies at once: the largest divisor of a head's
    block count whose input width stays within ``width`` channels (groups never straddle heads)."""
    fits = [g for g in range(1, blocks_per_head + 1) if g * block <= max(width, block)]
    return max(g for g in fits if blocks_per_head % g == 0)


def headwise(
    x: torch.Tensor, weight: torch.Tensor, heads: int, group: int = 1, parts: int = 1
) -> tuple[torch.Tensor, ...]:
    """Block-diagonal projection of x (B, K, N, C) into ``parts`` head-major outputs.

    weight (P, C/bs, out, bs): block b maps its own ``bs`` channels to ``out`` channels,
    whose ``parts`` equal slices are separate outputs (q and k fused: parts=2). Each output
    is (B*K, heads, N, C_part/heads), the layout of the mLSTM cell, so the cell needs no
    transposes. Why ``group``: 4x4 blocks as a batched product are all call and layout
    overhead on CPU; ``group`` blocks are multiplied as one block-diagonal matrix (zeros
    included), several times faster. Any ``group`` dividing a head's blocks gives the same map.
    """
    B, K, N, C = x.shape
    P, nb, out, bs = weight.shape
    ng, o = nb // group, out // parts
    r = group * o  # output channels of one group in one part
    gph = nb // heads // group  # groups per head
    eye = torch.eye(group, dtype=weight.dtype, device=weight.device)
    dense = torch.einsum("pgjsoi,jl->pgjislo", weight.view(P, ng, group, parts, o, bs), eye)
    dense = dense.reshape(P * ng, group * bs, parts * r)
    if P == 1:  # shared weights: all directions are rows of one product per group
        xg = x.reshape(B * K * N, ng, group * bs).transpose(0, 1)
        y = torch.bmm(xg, dense).view(heads, gph, B * K, N, parts, r)
        y = y.permute(4, 2, 0, 3, 1, 5)
    else:
        xg = x.reshape(B, K, N, ng, group * bs).permute(1, 3, 0, 2, 4).reshape(P * ng, B * N, -1)
        y = torch.bmm(xg, dense).view(K, heads, gph, B, N, parts, r)
        y = y.permute(5, 3, 0, 1, 4, 2, 6)
    y = y.reshape(parts, B * K, heads, N, gph * r)
    return (y.squeeze(0),) if parts == 1 else y.unbind(0)  # squeeze: a view, no backward copy


def head_bias(h: torch.Tensor, bias: torch.Tensor, batch: int) -> torch.Tensor:
    """Head-major h (B*K, NH, N, DH) plus a per-set bias (P, NH*DH), P = K or 1."""
    BK, NH, N, DH = h.shape
    out = h.view(batch, BK // batch, NH, N, DH) + bias.view(1, bias.size(0), NH, 1, DH)
    return out.view(BK, NH, N, DH)


def per_set_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """x (B, K, N, Cin) @ weight (P, Cin, Cout) + bias (P, Cout), P broadcast over K."""
    y = _ThinLinear.apply(x, weight)
    return y if bias is None else y + bias[:, None, :]


class _ThinLinear(torch.autograd.Function):
    """x (B, K, N, Cin) @ w (P, Cin, Cout) for a few output columns (the gates: 2 per head).

    Why: with Cout ~ 8, MKL runs ``x @ w`` and its weight gradient ``x^T @ g`` at a few
    GFLOP/s; the transposed products ``(w^T x^T)^T`` and ``(g^T x)^T`` are 3-5x faster.
    With P sets, each direction k is a batch of its own (rows of x made (K, B*N, Cin)).
    """

    @staticmethod
    def forward(ctx, x, w):
        B, K, N, Cin = x.shape
        P = w.size(0)
        xk = x.reshape(1, -1, Cin) if P == 1 else x.transpose(0, 1).reshape(K, B * N, Cin)
        ctx.shape = x.shape
        if torch.is_autocast_enabled(x.device.type):  # save what autocast multiplies
            dtype = torch.get_autocast_dtype(x.device.type)
            xk, w = xk.to(dtype), w.to(dtype)
        ctx.save_for_backward(xk, w)
        y = torch.bmm(w.transpose(1, 2), xk.transpose(1, 2)).transpose(1, 2)  # (P, rows, Cout)
        if P == 1:
            return y.view(B, K, N, -1)
        return y.reshape(K, B, N, -1).transpose(0, 1)

    @staticmethod
    def backward(ctx, grad):
        xk, w = ctx.saved_tensors
        B, K, N, Cin = ctx.shape
        P = w.size(0)
        grad, w = grad.to(xk.dtype), w.to(xk.dtype)  # autocast: the dtype forward ran in
        gk = (
            grad.reshape(1, -1, grad.size(-1))
            if P == 1
            else grad.transpose(0, 1).reshape(K, B * N, -1)
        )
        dx = torch.bmm(gk, w.transpose(1, 2))
        dx = dx.view(B, K, N, Cin) if P == 1 else dx.view(K, B, N, Cin).transpose(0, 1)
        dw = torch.bmm(gk.transpose(1, 2), xk).transpose(1, 2)
        return dx, dw


def fold_gates(
    qk_weight: torch.Tensor, v_weight: torch.Tensor, gate_weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gate weights on cat(q, k, v) folded through the headwise q/k/v maps.

    The gates are linear in q, k, v, which are headwise-linear in the conv output c (q, k)
    and the branch input x (v), so ``cat(q, k, v) @ W == c @ Wc + x @ Wx`` with
    Wc, Wx (P, inner, G). Why: no (.., 3*inner) concatenation and a third of the gate
    products, whose 8-column shape runs at a few GFLOP/s on CPU. Same parameters, same maths.
    """
    P, nb, out2, bs = qk_weight.shape
    inner, G = nb * bs, gate_weight.size(-1)
    wq, wk, wv = gate_weight.view(P, 3, nb, bs, G).unbind(1)
    w_qk = torch.stack([wq, wk], dim=2).view(P, nb, out2, G)  # matches the q|k block stacking
    wc = torch.einsum("phoi,phog->phig", qk_weight, w_qk).reshape(P, inner, G)
    wx = torch.einsum("phoi,phog->phig", v_weight, wv).reshape(P, inner, G)
    return wc, wx


def head_norm(
    h: torch.Tensor, weight: torch.Tensor, c: torch.Tensor, skip: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """``skip * c + GroupNorm(h) * weight``: per-head normalisation (weight only) plus the
    learnable skip of the conv output.

    h (B*K, NH, N, DH) head-major as the cell returns it, c (B, K, N, C) token-major,
    weight and skip (P, C) with P = K or 1. Why fused: the head-major -> token-major layout
    change is done by the one ``addcmul`` pass that adds the skip, not by a separate copy.
    """
    BK, NH, N, DH = h.shape
    B, K = c.shape[:2]
    hn = F.layer_norm(h, (DH,), eps=eps).view(B, K, NH, N, DH).transpose(2, 3)
    out = _SkipAffine.apply(c.view(B, K, N, NH, DH), skip, hn, weight)
    return out.view(B, K, N, NH * DH)


def sum_to_sets(t: torch.Tensor, sets: int) -> torch.Tensor:
    """Sum (B, K, N, ...) over batch and tokens (and over K when ``sets`` is 1) -> (sets, ...).

    Why: autograd reduces a broadcast weight's gradient with one sum over dims (0, 2), which
    CPU runs several times slower than two single-axis sums.
    """
    t = t.sum(0).sum(1)
    return t.sum(0, keepdim=True) if sets == 1 else t


class _SkipAffine(torch.autograd.Function):
    """``c * skip + hn * weight`` on (B, K, N, NH, DH) views, weights (P, NH*DH) per set."""

    @staticmethod
    def forward(ctx, c, skip, hn, weight):
        P, NH, DH = skip.size(0), c.size(-2), c.size(-1)
        s, w = skip.view(P, 1, NH, DH), weight.view(P, 1, NH, DH)
        ctx.save_for_backward(c, skip, hn, weight)
        return torch.addcmul(c * s, hn, w)

    @staticmethod
    def backward(ctx, g):
        c, skip, hn, weight = ctx.saved_tensors
        P, NH, DH = skip.size(0), c.size(-2), c.size(-1)
        s, w = skip.view(P, 1, NH, DH), weight.view(P, 1, NH, DH)
        dskip = sum_to_sets(g * c, P).reshape(P, -1)
        dweight = sum_to_sets(g * hn, P).reshape(P, -1)
        return g * s, dskip, g * w, dweight


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
