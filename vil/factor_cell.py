"""The parallel mLSTM form with its decay matrix factorised, for gates of moderate range.

The stabilised decay is ``D[t, s] = exp(a[s] - M[t])`` (s <= t) with ``a = i - F`` and
``M = cummax(a)`` (see vil/parallel_cell.py). It is an outer product: with any per-head
constant c, ``D[t, s] = u[t] w[s]``, ``u = exp(c - M)``, ``w = exp(a - c)``. So
``C = mask * ((q u) (k w)^T)``: no (S, S) exponential, subtraction or float64 pass, and
the gate gradients come from (S, DH) products (d log u = sum dq' q', d log w = sum dk' k'),
not from (S, S) reductions. Forward and backward each make two (S, S) passes besides the
matrix products (mask and row sum; row-sum gradient and mask). The row sums stay (S, S)
sums: as ``q' . cumsum(k')`` they would round up to 20x worse when C's terms cancel.

Why only for moderate range: u and w must stay far from float32 overflow and underflow.
With c the midpoint of a's range R, both lie in [exp(-R/2), exp(R/2)]; ``SAFE_RANGE``
keeps them within exp(+-30), where the products keep float32's relative precision.
Wider ranges (long products of tiny forget gates, spiking input gates) use
:class:`vil.parallel_cell.ParallelCell`; :func:`vil.mlstm.parallel` picks per call.
"""

from __future__ import annotations

import torch

from vil.parallel_cell import as_f32, gate_grads, normaliser_grads

SAFE_RANGE = 60.0  # max over heads of max(a) - min(a) for the factorised form
_LOWER: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def _lower(S: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Causal (lower-triangular, diagonal included) 0/1 mask, cached."""
    key = (S, dtype, device)
    if key not in _LOWER:
        _LOWER[key] = torch.ones(S, S, dtype=dtype, device=device).tril()
    return _LOWER[key]


def factorisable(a: torch.Tensor) -> bool:
    """True when every head's range of ``a`` is within :data:`SAFE_RANGE`."""
    return bool((a.amax(-1) - a.amin(-1)).max() <= SAFE_RANGE)


class FactorCell(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, igate, fgate, eps: float, cum, a, M, arg):
        c = (a.amax(-1, keepdim=True) + a.amin(-1, keepdim=True)) / 2
        u = torch.exp(c - M).float().mul_(q.size(-1) ** -0.5).unsqueeze(-1)  # scale folded in
        w = torch.exp(a - c).float().unsqueeze(-1)
        qs, ks = as_f32(q) * u, as_f32(k) * w
        C = (qs @ ks.transpose(-1, -2)).mul_(_lower(q.size(-2), qs.dtype, q.device))
        rowsum = C.sum(-1)
        floor = torch.exp(-(cum + M)).float()  # exp(-m)
        denom = torch.maximum(rowsum.abs(), floor) + eps
        Y = C @ as_f32(v)  # saved instead of h (dynamo rejects saving an output)
        ctx.save_for_backward(v, fgate, qs, ks, u, w, C, Y, rowsum, floor, denom, arg)
        ctx.dtypes = (q.dtype, k.dtype, v.dtype, igate.dtype, fgate.dtype)
        return (Y / denom.unsqueeze(-1)).to(q.dtype)

    @staticmethod
    def backward(ctx, dh):
        v, fgate, qs, ks, u, w, C, Y, rowsum, floor, denom, arg = ctx.saved_tensors
        dY, drow, dm = normaliser_grads(as_f32(dh), Y, rowsum, floor, denom)
        dv = C.transpose(-1, -2) @ dY
        dC = (
            (dY @ as_f32(v).transpose(-1, -2))
            .add_(drow)
            .mul_(_lower(C.size(-1), C.dtype, C.device))
        )
        dqs = dC @ ks
        dks = dC.transpose(-1, -2) @ qs
        dlogu = (dqs * qs).sum(-1).double()  # d/d log u; log u = c - M
        dlogw = (dks * ks).sum(-1).double()  # d/d log w; log w = a - c
        da, dfgate = gate_grads(dlogw, dm - dlogu, dm, arg, fgate)
        dq, dk = dqs * u, dks * w
        grads = (dq, dk, dv, da, dfgate)
        return (
            *(g.to(t) for g, t in zip(grads, ctx.dtypes, strict=True)),
            None,
            None,
            None,
            None,
            None,
        )
