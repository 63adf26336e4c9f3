"""The three mLSTM forms against a float64 evaluation of vil-facts.md section 2."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vil import mlstm


def reference(q, k, v, i, f):
    """Float64 evaluation of the stabilised parallel equations, written independently."""
    q, k, v, i, f = (t.double() for t in (q, k, v, i, f))
    S = q.size(-2)
    cum = F.logsigmoid(f).cumsum(-1)  # float64: F[t] - F[s] cancellation is harmless here
    logD = cum.unsqueeze(-1) - cum.unsqueeze(-2) + i.unsqueeze(-2)
    causal = torch.ones(S, S, dtype=torch.bool).tril()
    logD = logD.masked_fill(~causal, -torch.inf)
    m = logD.max(dim=-1, keepdim=True).values
    C = (q @ k.transpose(-1, -2)) / q.size(-1) ** 0.5 * torch.exp(logD - m)
    n = torch.maximum(C.sum(-1, keepdim=True).abs(), torch.exp(-m))
    return (C / (n + 1e-6)) @ v


def make_inputs(B, NH, S, DH, spiky, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, NH, S, DH, generator=g) for _ in range(3))
    i = torch.randn(B, NH, S, generator=g)
    f = torch.randn(B, NH, S, generator=g) + 3.0  # realistic: forget gates mostly open
    if spiky:  # long runs of near-closed forget gates and huge input gates
        spikes = torch.rand(B, NH, S, generator=g) < 0.3
        sign = torch.where(torch.rand(B, NH, S, generator=g) < 0.5, -30.0, 30.0)
        i = torch.where(spikes, sign, i)
        f = torch.where(torch.rand(B, NH, S, generator=g) < 0.5, -30.0 * torch.ones(()), f)
    return q, k, v, i, f


FORMS = {
    "parallel": mlstm.parallel,
    "parallel_autograd": mlstm.parallel_autograd,
    "recurrent": mlstm.recurrent,
    "chunkwise": None,  # chunk size chosen per case below
}
CASES = [(1, 1, 1, 8), (2, 3, 7, 8), (1, 2, 64, 16), (2, 1, 257, 8)]


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("spiky", [False, True], ids=["realistic", "spiky"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"B{c[0]}H{c[1]}S{c[2]}")
@pytest.mark.parametrize("form", list(FORMS))
def test_form_matches_float64_equations(form, case, spiky):
    B, NH, S, DH = case
    tol = 1e-3 if spiky else 1e-4
    inputs = make_inputs(B, NH, S, DH, spiky, seed=S + 7 * B)
    chunk = {1: 4, 7: 3, 64: 48, 257: 16}[S]  # none of these divides S (except S=1 trivially)
    fn = FORMS[form] or (lambda *a: mlstm.chunkwise(*a, chunk_size=chunk))
    ours_in = [t.clone().requires_grad_() for t in inputs]
    ref_in = [t.double().requires_grad_() for t in inputs]
    h, h_ref = fn(*ours_in), reference(*ref_in)
    assert h.shape == (B, NH, S, DH) and h.dtype == torch.float32
    assert rel_err(h, h_ref) < tol
    w = torch.randn(h.shape, generator=torch.Generator().manual_seed(1))
    (h * w).sum().backward()
    (h_ref * w.double()).sum().backward()
    for name, a, r in zip("q k v igate fgate".split(), ours_in, ref_in, strict=True):
        grad = torch.zeros_like(a) if a.grad is None else a.grad  # f[0] never matters
        assert torch.isfinite(grad).all(), name
        assert rel_err(grad, r.grad) < tol, name


def test_cancellation_prone_case_stays_accurate():
    """A long stretch of closed forget gates: the naive F[t]-F[s] form loses ~1e-3 here."""
    S = 257
    q, k, v, i, _ = make_inputs(1, 1, S, 8, spiky=False, seed=3)
    f = torch.full((1, 1, S), -12.0)
    f[..., -8:] = 8.0
    ref = reference(q, k, v, i, f)
    assert rel_err(mlstm.parallel(q, k, v, i, f), ref) < 1e-4
    assert rel_err(mlstm.chunkwise(q, k, v, i, f, chunk_size=50), ref) < 1e-4


def test_auto_picks_chunkwise_for_long_sequences():
    q, k, v, i, f = make_inputs(1, 2, mlstm.AUTO_CHUNK_THRESHOLD + 5, 8, False, seed=0)
    auto = mlstm.mlstm(q, k, v, i, f, form="auto", chunk_size=32)
    assert torch.equal(auto, mlstm.chunkwise(q, k, v, i, f, chunk_size=32))
    short = [t[..., :64, :] if t.dim() == 4 else t[..., :64] for t in (q, k, v, i, f)]
    assert torch.equal(mlstm.mlstm(*short, form="auto"), mlstm.parallel(*short))


def test_unknown_form_lists_valid_names():
    q, k, v, i, f = make_inputs(1, 1, 4, 4, False, seed=0)
    valid = "valid: auto, parallel, parallel_autograd, chunkwise, recurrent"
    with pytest.raises(ValueError, match=valid):
        mlstm.mlstm(q, k, v, i, f, form="fast")
