"""The stabilised parallel mLSTM form as one autograd Function with a hand-written backward.

Why: with autograd, every element-wise step over the (S, S) matrices is saved and replayed;
at ViL's shapes (S=64, small head dims) those passes, not the matrix products, dominate.
Here the forward makes ~5 passes over (S, S) and the backward ~5, saving only C and D.

Maths (per batch and head), with a = i - F, F = cumsum(logsigmoid(f)) in float64 and
M = cummax(a), so that the row maximum m[t] = F[t] + M[t] needs no (S, S) reduction::

    logD[t, s] - m[t] = a[s] - M[t]            (s <= t; float64, then float32: no cancellation)
    D = exp(logD - m),  C = (q k^T / sqrt(d)) * D,  r = sum_s C[t, s]
    n = max(|r|, exp(-m)),  h = (C v) / (n + eps)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_MASKS: dict[tuple[int, torch.device], torch.Tensor] = {}


def as_f32(t: torch.Tensor) -> torch.Tensor:
    """float32 without the no-op ``.float()`` alias, which torch.compile refuses to save."""
    return t if t.dtype == torch.float32 else t.float()


def _upper(S: int, device: torch.device) -> torch.Tensor:
    """Strictly upper-triangular (non-causal) mask, cached per length and device."""
    key = (S, device)
    if key not in _MASKS:
        _MASKS[key] = torch.ones(S, S, dtype=torch.bool, device=device).triu(1)
    return _MASKS[key]


def log_decay_terms(igate: torch.Tensor, fgate: torch.Tensor):
    """float64 ``cum = cumsum(logsigmoid(f))``, ``a = i - cum``, ``M, arg = cummax(a)``."""
    cum = F.logsigmoid(fgate.detach().double()).cumsum(-1)
    a = igate.detach().double() - cum
    M, arg = a.cummax(dim=-1)
    return cum, a, M, arg


def rev_cumsum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Suffix sums along ``dim``."""
    return x.flip(dim).cumsum(dim).flip(dim)


def normaliser_grads(dh, Y, rowsum, floor, denom):
    """Backward of ``h = Y / (max(|rowsum|, floor) + eps)`` with floor = exp(-m).

    Returns dY, the gradient reaching every row sum's terms (B, NH, S, 1), and dm (float64).
    """
    dY = dh / denom.unsqueeze(-1)
    ddenom = -(dh * Y).sum(-1) / denom.square()  # h = Y / denom
    use_row = rowsum.abs() >= floor
    drow = torch.where(use_row, ddenom * rowsum.sign(), 0.0).unsqueeze(-1)
    dm = torch.where(use_row, 0.0, -ddenom * floor).double()  # d exp(-m) / dm = -exp(-m)
    return dY, drow, dm


def gate_grads(da, dM, dm, arg, fgate):
    """Gate gradients from those of a = i - cum, M = cummax(a) and m = cum + M (float64).

    Returns (d igate, d fgate) in float64.
    """
    da = da.scatter_add(-1, arg, dM)  # cummax: M[t] = a[arg[t]]
    dcum = dm - da  # m = cum + M and a = i - cum
    return da, rev_cumsum(dcum, -1) * torch.sigmoid(-fgate.double())


class ParallelCell(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, igate, fgate, eps: float):
        scale = q.size(-1) ** -0.5
        cum, a, M, arg = log_decay_terms(igate, fgate)
        diff = (a.unsqueeze(-2) - M.unsqueeze(-1)).float()
        # out of place: torch.compile refuses to save the alias an in-place op returns
        D = diff.masked_fill(_upper(q.size(-2), q.device), -torch.inf).exp()
        C = as_f32(q @ k.transpose(-1, -2)) * D * scale
        rowsum = C.sum(dim=-1)
        floor = torch.exp(-(cum + M)).float()  # exp(-m)
        denom = torch.maximum(rowsum.abs(), floor) + eps
        Y = as_f32(C.to(v.dtype) @ v)  # saved instead of h (dynamo rejects saving an output)
        ctx.save_for_backward(q, k, v, fgate, C, D, Y, rowsum, floor, denom, arg)
        ctx.scale = scale
        return (Y / denom.unsqueeze(-1)).to(q.dtype)

    @staticmethod
    def backward(ctx, dh):
        q, k, v, fgate, C, D, Y, rowsum, floor, denom, arg = ctx.saved_tensors
        dY, drow, dm = normaliser_grads(as_f32(dh), Y, rowsum, floor, denom)
        vf = as_f32(v)
        dv = C.transpose(-1, -2) @ dY
        dC = dY @ vf.transpose(-1, -2)
        dC.add_(drow)
        dQK = (dC * D).mul_(ctx.scale)
        dq = dQK @ as_f32(k)
        dk = dQK.transpose(-1, -2) @ as_f32(q)
        dE = dC.mul_(C)  # d/d(logD - m): C = QK * D and D' = D
        da, dfgate = gate_grads(dE.sum(-2).double(), dm - dE.sum(-1).double(), dm, arg, fgate)
        return (
            dq.to(q.dtype),
            dk.to(k.dtype),
            dv.to(v.dtype),
            da.to(fgate.dtype),
            dfgate.to(fgate.dtype),
            None,
        )
