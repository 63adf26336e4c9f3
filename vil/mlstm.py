"""The mLSTM cell in three exactly equivalent forms (docs/vil-facts.md: "The mLSTM cell").

All forms take ``q, k, v`` of shape (B, NH, S, DH) and input/forget gate pre-activations
``igate, fgate`` of shape (B, NH, S) and return ``h`` of shape (B, NH, S, DH)::

    logD[t, s] = sum_{s < r <= t} logsigmoid(f[r]) + i[s]   (s <= t, else -inf)
    m[t]       = max_s logD[t, s]
    C          = (q k^T / sqrt(DH)) * exp(logD - m)
    n[t]       = max(|sum_s C[t, s]|, exp(-m[t]))
    h          = (C / (n + eps)) v

Segment sums are computed directly (masked cumulative sums over the lower triangle, or
chunk-local prefix/suffix sums), never as ``F[t] - F[s]`` of a global cumulative sum, which
cancels catastrophically in float32 when forget gates are small for a long stretch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from vil import factor_cell, kernels
from vil.parallel_cell import ParallelCell, as_f32, log_decay_terms
from vil.registry import Registry

EPS = 1e-6
AUTO_CHUNK_THRESHOLD = 768  # "auto": chunkwise above this many tokens (benchmarks/bench_mlstm.py)
DEFAULT_CHUNK = 64


def segsum(logf: torch.Tensor) -> torch.Tensor:
    """(..., S) -> (..., S, S): ``out[t, s] = sum_{s < r <= t} logf[r]``, -inf above diagonal."""
    S = logf.size(-1)
    x = logf.unsqueeze(-1).expand(*logf.shape, S)  # x[..., r, s] = logf[r]
    ones = torch.ones(S, S, dtype=torch.bool, device=logf.device)
    seg = x.masked_fill(~ones.tril(-1), 0.0).cumsum(dim=-2)  # keep r > s, sum over r <= t
    return seg.masked_fill(~ones.tril(0), -torch.inf)


def _causal_log_weights(logf: torch.Tensor, igate: torch.Tensor) -> torch.Tensor:
    return segsum(logf) + igate.unsqueeze(-2)


def parallel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    igate: torch.Tensor,
    fgate: torch.Tensor,
    eps: float = EPS,
) -> torch.Tensor:
    """Stabilised parallel form: O(S^2 DH) time, O(S^2) memory per head.

    Runs as one autograd Function with a hand-written backward: the factorised decay of
    vil/factor_cell.py when every head's gate range allows it (eager mode on CPU), else the
    general stabilised form of vil/parallel_cell.py (always under torch.compile, which fuses
    its element-wise passes and cannot branch on data, and on accelerators, where the range
    check would cost a device-to-host sync in every block).
    """
    if q.device.type == "cpu" and not torch.compiler.is_compiling():
        terms = log_decay_terms(igate, fgate)
        if factor_cell.factorisable(terms[1]):
            return _in_fp32(factor_cell.FactorCell, q, k, v, igate, fgate, eps, *terms)
    return _in_fp32(ParallelCell, q, k, v, igate, fgate, eps)


def _in_fp32(cell: type[torch.autograd.Function], q, k, v, igate, fgate, *rest) -> torch.Tensor:
    """Run a hand-written cell in float32 with autocast off; h comes back in q's dtype.

    Why: under bf16 autocast the cell's products would come out in bf16 while its backward
    (which autocast does not cover) mixes them with float32; the decay and normaliser need
    float32 anyway. The cell is a small share of the FLOPs at ViL's sequence lengths.
    """
    with torch.autocast(q.device.type, enabled=False):
        return cell.apply(*map(as_f32, (q, k, v, igate, fgate)), *rest).to(q.dtype)


def parallel_stable(q, k, v, igate, fgate, eps: float = EPS) -> torch.Tensor:
    """The general stabilised parallel form, whatever the gate range (for tests and benchmarks)."""
    return _in_fp32(ParallelCell, q, k, v, igate, fgate, eps)


def parallel_factorised(q, k, v, igate, fgate, eps: float = EPS) -> torch.Tensor:
    """The factorised parallel form, forced (accurate only within ``factor_cell.SAFE_RANGE``)."""
    terms = log_decay_terms(igate, fgate)
    return _in_fp32(factor_cell.FactorCell, q, k, v, igate, fgate, eps, *terms)


def parallel_autograd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    igate: torch.Tensor,
    fgate: torch.Tensor,
    eps: float = EPS,
) -> torch.Tensor:
    """The same parallel form in plain autograd ops (a second, independent implementation)."""
    logD = _causal_log_weights(F.logsigmoid(fgate.float()), igate.float())
    m = logD.amax(dim=-1, keepdim=True)  # (B, NH, S, 1); finite: the diagonal is finite
    D = torch.exp(logD - m)
    scores = (q @ k.transpose(-1, -2)) * (q.size(-1) ** -0.5)
    C = scores.float() * D
    n = torch.maximum(C.sum(dim=-1, keepdim=True).abs(), torch.exp(-m))
    return ((C.to(v.dtype) @ v).float() / (n + eps)).to(q.dtype)


def _chunk_state_update(k, v, lf, ig, state):
    """Carry (C, n, m) from the previous chunk's end to this chunk's end."""
    # log weight of token s at the chunk end: sum_{s < r <= end} logf[r] + i[s] (suffix sums)
    suffix = F.pad(lf[..., 1:], (0, 1)).flip(-1).cumsum(-1).flip(-1)
    g = suffix + ig
    m_new = g.amax(dim=-1)
    if state is not None:
        m_new = torch.maximum(m_new, state[2] + lf.sum(-1))
    w = torch.exp(g - m_new.unsqueeze(-1)).unsqueeze(-1)  # (B, NH, L, 1)
    kw = (k * w.to(k.dtype)).float()
    C_new, n_new = kw.transpose(-1, -2) @ v.float(), kw.sum(dim=-2)
    if state is not None:
        C, n, m = state
        decay = torch.exp(m + lf.sum(-1) - m_new)
        C_new = C_new + decay[..., None, None] * C
        n_new = n_new + decay[..., None] * n
    return C_new, n_new, m_new


def chunkwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    igate: torch.Tensor,
    fgate: torch.Tensor,
    chunk_size: int = DEFAULT_CHUNK,
    eps: float = EPS,
) -> torch.Tensor:
    """Recurrent across chunks, parallel inside a chunk: O(S L DH + S DH^2) time.

    Any ``chunk_size`` works; the last chunk may be shorter. The stabiliser ``m[t]`` equals the
    parallel form's row maximum exactly, so the two forms agree to rounding error.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    scale = q.size(-1) ** -0.5
    logf, igate = F.logsigmoid(fgate.float()), igate.float()
    outs, state = [], None
    # split once: slicing inside the loop would make every slice's backward allocate a
    # zero tensor of the full input (O(S^2 / L) backward)
    chunks = zip(
        q.split(chunk_size, -2),
        (k * scale).split(chunk_size, -2),
        v.split(chunk_size, -2),
        logf.split(chunk_size, -1),
        igate.split(chunk_size, -1),
        strict=True,
    )
    for qc, kc, vc, lf, ig in chunks:
        logD = _causal_log_weights(lf, ig)
        m = logD.amax(dim=-1)
        if state is not None:
            m_inter = state[2].unsqueeze(-1) + lf.cumsum(-1)  # old tokens' max log weight at t
            m = torch.maximum(m, m_inter)
        Cm = (qc @ kc.transpose(-1, -2)).float() * torch.exp(logD - m.unsqueeze(-1))
        num, den = Cm @ vc.float(), Cm.sum(dim=-1)
        if state is not None:
            w = torch.exp(m_inter - m)
            qf = qc.float()
            num = num + w.unsqueeze(-1) * (qf @ state[0])
            den = den + w * (qf @ state[1].unsqueeze(-1)).squeeze(-1)
        n = torch.maximum(den.abs(), torch.exp(-m))
        outs.append((num / (n + eps).unsqueeze(-1)).to(q.dtype))
        state = _chunk_state_update(kc, vc, lf, ig, state)
    return torch.cat(outs, dim=-2)


def recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    igate: torch.Tensor,
    fgate: torch.Tensor,
    eps: float = EPS,
) -> torch.Tensor:
    """Step-by-step form with matrix memory ``C_t = f_t C_{t-1} + i_t k_t v_t^T`` (stabilised)."""
    scale = q.size(-1) ** -0.5
    logf, igate = F.logsigmoid(fgate.float()), igate.float()
    qf, kf, vf = q.float(), k.float() * scale, v.float()
    C = n = m = None
    outs = []
    for t in range(q.size(-2)):
        kt, vt, it = kf[..., t, :], vf[..., t, :], igate[..., t]
        if m is None:  # first token: only its own input contributes
            m = it
            C = torch.exp(it - m)[..., None, None] * (kt.unsqueeze(-1) * vt.unsqueeze(-2))
            n = torch.exp(it - m)[..., None] * kt
        else:
            m_new = torch.maximum(logf[..., t] + m, it)
            fw, iw = torch.exp(logf[..., t] + m - m_new), torch.exp(it - m_new)
            C = fw[..., None, None] * C + iw[..., None, None] * (
                kt.unsqueeze(-1) * vt.unsqueeze(-2)
            )
            n = fw[..., None] * n + iw[..., None] * kt
            m = m_new
        qt = qf[..., t, :]
        num = (qt.unsqueeze(-2) @ C).squeeze(-2)
        den = torch.maximum((qt * n).sum(-1).abs(), torch.exp(-m))
        outs.append(num / (den + eps).unsqueeze(-1))
    return torch.stack(outs, dim=-2).to(q.dtype)


FORMS: Registry[Callable] = Registry("mLSTM form")  # cell forms by name (model.cell)


def register_form(name: str, fn: Callable) -> Callable:
    """Add an mLSTM cell form ``fn(q, k, v, igate, fgate) -> h`` (then valid as model.cell)."""
    return FORMS.register(name, fn)


for _name, _fn in (("parallel", parallel), ("parallel_autograd", parallel_autograd),
                   ("chunkwise", chunkwise), ("recurrent", recurrent)):  # fmt: skip
    register_form(_name, _fn)


def mlstm(q, k, v, igate, fgate, form: str = "auto", chunk_size: int = DEFAULT_CHUNK):
    """Dispatch by name; ``auto`` picks parallel for short and chunkwise for long sequences."""
    if form == "auto":
        form = "chunkwise" if q.size(-2) > AUTO_CHUNK_THRESHOLD else "parallel"
    if form == "chunkwise":
        return chunkwise(q, k, v, igate, fgate, chunk_size=chunk_size)
    if kernels.is_kernel_form(form):
        return kernels.run(q, k, v, igate, fgate, form, chunk_size)
    if form not in FORMS:
        raise ValueError(
            f"unknown mLSTM form {form!r}; valid: auto, {', '.join(FORMS)}, "
            "kernels or kernels:<name> (mlstm-kernels)"
        )
    return FORMS[form](q, k, v, igate, fgate)


def form_names() -> list[str]:
    """Every valid ``form`` / ``cell`` name (kernel forms only where mlstm-kernels is installed)."""
    return ["auto", *FORMS, *kernels.form_names()]
