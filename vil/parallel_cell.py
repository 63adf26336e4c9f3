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


def _f32(t: torch.Tensor) -> torch.Tensor:
    """float32 without the no-op ``.float()`` alias, which torch.compile refuses to save."""
    return t if t.dtype == torch.float32 else t.float()


def _upper(S: int, device: torch.device) -> torch.Tensor:
    """Strictly upper-triangular (non-causal) mask, cached per length and device."""
    key = (S, device)
    if key not in _MASKS:
        _MASKS[key] = torch.ones(S, S, dtype=torch.bool, device=device).triu(1)
    return _MASKS[key]


class ParallelCell(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, igate, fgate, eps: float):
        scale = q.size(-1) ** -0.5
        cum = F.logsigmoid(fgate.double()).cumsum(-1)
        a = igate.double() - cum
        M, arg = a.cummax(dim=-1)
        diff = (a.unsqueeze(-2) - M.unsqueeze(-1)).float()
        # out of place: torch.compile refuses to save the alias an in-place op returns
        D = diff.masked_fill(_upper(q.size(-2), q.device), -torch.inf).exp()
        C = _f32(q @ k.transpose(-1, -2)) * D * scale
        rowsum = C.sum(dim=-1)
        floor = torch.exp(-(cum + M)).float()  # exp(-m)
        denom = torch.maximum(rowsum.abs(), floor) + eps
        Y = _f32(C.to(v.dtype) @ v)  # saved instead of h (dynamo rejects saving an output)
        ctx.save_for_backward(q, k, v, fgate, C, D, Y, rowsum, floor, denom, arg)
        ctx.scale = scale
        return (Y / denom.unsqueeze(-1)).to(q.dtype)

    @staticmethod
    def backward(ctx, dh):
        q, k, v, fgate, C, D, Y, rowsum, floor, denom, arg = ctx.saved_tensors
        dh = _f32(dh)
        dY = dh / denom.unsqueeze(-1)
        vf = _f32(v)
        dv = C.transpose(-1, -2) @ dY
        dC = dY @ vf.transpose(-1, -2)
        ddenom = -(dh * Y).sum(-1) / denom.square()  # h = Y / denom
        use_row = rowsum.abs() >= floor
        drow = torch.where(use_row, ddenom * rowsum.sign(), 0.0)
        dm = torch.where(use_row, 0.0, -ddenom * floor).double()  # d exp(-m) / dm = -exp(-m)
        dC.add_(drow.unsqueeze(-1))
        dQK = (dC * D).mul_(ctx.scale)
        dq = dQK @ _f32(k)
        dk = dQK.transpose(-1, -2) @ _f32(q)
        dE = dC.mul_(C)  # d/d(logD - m): C = QK * D and D' = D
        da = dE.sum(dim=-2).double()
        dM = dm - dE.sum(dim=-1).double()
        da = da.scatter_add(-1, arg, dM)  # cummax: M[t] = a[arg[t]]
        dcum = dm - da  # m = cum + M and a = i - cum
        dlogf = dcum.flip(-1).cumsum(-1).flip(-1)
        dfgate = dlogf * torch.sigmoid(-fgate.double())
        return (
            dq.to(q.dtype),
            dk.to(k.dtype),
            dv.to(v.dtype),
            da.to(fgate.dtype),
            dfgate.to(fgate.dtype),
            None,
        )
