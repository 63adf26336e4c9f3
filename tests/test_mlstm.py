"""The three mLSTM forms against a float64 evaluation of the cell (docs/vil-facts.md, "The
mLSTM cell")."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vil import factor_cell, mlstm, parallel_cell


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
    "parallel_stable": mlstm.parallel_stable,
    "parallel_factorised": mlstm.parallel_factorised,
    "parallel_autograd": mlstm.parallel_autograd,
    "recurrent": mlstm.recurrent,
    "chunkwise": None,  # chunk size chosen per case below
}
CASES = [(1, 1, 1, 8), (2, 3, 7, 8), (1, 2, 64, 16), (2, 1, 257, 8)]


def _decay(q, k, v, i, f) -> torch.Tensor:
    return parallel_cell.log_decay_terms(i, f)[1]


def test_parallel_dispatches_by_gate_range():
    realistic = make_inputs(2, 2, 64, 8, spiky=False, seed=0)
    spiky = make_inputs(2, 2, 64, 8, spiky=True, seed=0)
    assert factor_cell.factorisable(_decay(*realistic))
    assert not factor_cell.factorisable(_decay(*spiky))
    assert torch.equal(mlstm.parallel(*realistic), mlstm.parallel_factorised(*realistic))
    assert torch.equal(mlstm.parallel(*spiky), mlstm.parallel_stable(*spiky))


@pytest.mark.parametrize("S", [7, 64, 257])
def test_factorised_form_is_accurate_at_the_edge_of_its_range(S):
    """Gate range just inside SAFE_RANGE: u, w reach exp(+-30), the float32 worst case.

    Input gates of +-29.5 are the spiking regime, hence the 1e-3 tolerance (measured:
    ~1e-5 at S <= 64, ~1e-4 at S = 257, where the general stable form is at ~6e-4)."""
    q, k, v, _, _ = make_inputs(2, 2, S, 16, spiky=False, seed=S)
    g = torch.Generator().manual_seed(S)
    f = torch.full((2, 2, S), 8.0)  # forget gates ~open: a's range is the input gates' range
    half = (factor_cell.SAFE_RANGE - 1) / 2
    i = (torch.rand(2, 2, S, generator=g) * 2 - 1) * half
    i[..., 0], i[..., -1] = half, -half  # pin the range: old tokens big, the newest tiny
    inputs = (q, k, v, i, f)
    a = _decay(*inputs)
    assert factor_cell.SAFE_RANGE - 3 < (a.amax(-1) - a.amin(-1)).max() <= factor_cell.SAFE_RANGE
    ours_in = [t.clone().requires_grad_() for t in inputs]
    ref_in = [t.double().requires_grad_() for t in inputs]
    h, h_ref = mlstm.parallel_factorised(*ours_in), reference(*ref_in)
    assert rel_err(h, h_ref) < 1e-3
    w = torch.randn(h.shape, generator=g)
    (h * w).sum().backward()
    (h_ref * w.double()).sum().backward()
    for name, x, r in zip("q k v igate fgate".split(), ours_in, ref_in, strict=True):
        assert rel_err(x.grad, r.grad) < 1e-3, name


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


@pytest.mark.parametrize("spiky", [False, True], ids=["realistic", "spiky"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"B{c[0]}H{c[1]}S{c[2]}")
@pytest.mark.parametrize("form", list(FORMS))
def test_form_matches_float64_equations(form, case, spiky):
    B, NH, S, DH = case
    tol = 1e-3 if spiky else 1e-4
    inputs = make_inputs(B, NH, S, DH, spiky, seed=S + 7 * B)
    if form == "parallel_factorised" and not factor_cell.factorisable(_decay(*inputs)):
        pytest.skip("gate range beyond factor_cell.SAFE_RANGE: parallel uses the stable form")
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
    valid = "valid: auto, parallel, parallel_autograd, chunkwise, recurrent, kernels"
    with pytest.raises(ValueError, match=valid):
        mlstm.mlstm(q, k, v, i, f, form="fast")


@pytest.mark.parametrize("form", ["parallel_stable", "parallel_factorised"])
def test_hand_written_cells_run_in_float32_under_bf16_autocast(form):
    inputs = [t.clone().requires_grad_() for t in make_inputs(2, 2, 64, 16, False, seed=5)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q, k, v = (t.bfloat16() for t in inputs[:3])
        h = getattr(mlstm, form)(q, k, v, *inputs[3:])
    assert h.dtype == torch.bfloat16
    h.float().sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in inputs)
    ref = reference(*inputs)
    assert rel_err(h.float(), ref) < 2e-2  # bf16 inputs and output, float32 inside
