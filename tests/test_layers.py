"""Building blocks against their PyTorch definitions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vil import layers


def _conv1d_reference(x, weight, bias):
    """Per direction: F.conv1d with W-1 left padding, the first N outputs (autograd)."""
    B, K, N, C = x.shape
    outs = []
    for k in range(K):
        p = k if weight.size(0) > 1 else 0
        y = F.conv1d(
            x[:, k].transpose(1, 2),
            weight[p].unsqueeze(1),
            bias[p],
            groups=C,
            padding=weight.size(-1) - 1,
        )[..., :N]
        outs.append(y.transpose(1, 2))
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("sets,N,W", [(3, 9, 4), (1, 9, 4), (3, 2, 4), (1, 1, 3)])
def test_causal_conv_and_its_backward_equal_truncated_conv1d(sets, N, W):
    B, K, C = 2, 3, 5
    x = torch.randn(B, K, N, C, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(sets, C, W, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(sets, C, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(B, K, N, C, dtype=torch.float64)
    out = layers.causal_conv(x, weight, bias)
    ref = _conv1d_reference(x, weight, bias)
    assert torch.allclose(out, ref, atol=1e-12)
    got = torch.autograd.grad(out, (x, weight, bias), grad)
    want = torch.autograd.grad(ref, (x, weight, bias), grad)
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-12)


def _block_diagonal_reference(x, weight, heads, parts):
    """Token-major dense products with torch.block_diag, split into parts and heads."""
    B, K, N, C = x.shape
    P, nb, out, bs = weight.shape
    o = out // parts
    results = []
    for s in range(parts):
        per_k = []
        for k in range(K):
            w = weight[k if P > 1 else 0, :, s * o : (s + 1) * o]  # (nb, o, bs)
            per_k.append(x[:, k] @ torch.block_diag(*w).T)  # (B, N, nb*o)
        y = torch.stack(per_k, dim=1)  # (B, K, N, Cp)
        results.append(y.reshape(B * K, N, heads, -1).transpose(1, 2))
    return results


@pytest.mark.parametrize("sets", [1, 2])
@pytest.mark.parametrize("group,parts", [(1, 1), (2, 2), (4, 1), (4, 2)])
def test_headwise_is_block_diagonal_in_head_major_layout(sets, group, parts):
    B, K, N, bs, heads = 2, 2, 3, 4, 2
    nb = heads * 4
    x = torch.randn(B, K, N, nb * bs, dtype=torch.float64)
    weight = torch.randn(sets, nb, parts * bs, bs, dtype=torch.float64)
    out = layers.headwise(x, weight, heads, group, parts)
    ref = _block_diagonal_reference(x, weight, heads, parts)
    assert len(out) == parts
    for got, want in zip(out, ref, strict=True):
        assert got.shape == (B * K, heads, N, nb * bs // heads)
        assert torch.allclose(got, want, atol=1e-12)


def test_headwise_group_fits_heads():
    assert layers.headwise_group(24, 4) == 8  # ViL-T: 96 blocks of 4 over 4 heads
    assert layers.headwise_group(7, 4) == 7  # 7 divides itself and 28 <= 32
    assert layers.headwise_group(5, 8) == 1
    assert layers.headwise_group(6, 64) == 1


@pytest.mark.parametrize("sets", [1, 2])
def test_folded_gates_equal_gates_on_concatenated_qkv(sets):
    B, K, N, bs, heads = 2, 2, 5, 4, 2
    nb = heads * 3
    inner = nb * bs
    c = torch.randn(B, K, N, inner, dtype=torch.float64, requires_grad=True)
    x = torch.randn(B, K, N, inner, dtype=torch.float64, requires_grad=True)
    qk_w = torch.randn(sets, nb, 2 * bs, bs, dtype=torch.float64, requires_grad=True)
    v_w = torch.randn(sets, nb, bs, bs, dtype=torch.float64, requires_grad=True)
    gate_w = torch.randn(sets, 3 * inner, 2 * heads, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(sets, 2 * heads, dtype=torch.float64)
    wc, wx = layers.fold_gates(qk_w, v_w, gate_w)
    folded = layers.per_set_linear(c, wc, bias) + layers.per_set_linear(x, wx)
    q, k = (
        t.transpose(1, 2).reshape(B, K, N, inner) for t in layers.headwise(c, qk_w, heads, 1, 2)
    )
    (v,) = (t.transpose(1, 2).reshape(B, K, N, inner) for t in layers.headwise(x, v_w, heads))
    qkv = torch.cat([q, k, v], dim=-1)
    direct = torch.stack([qkv[:, i] @ gate_w[i if sets > 1 else 0] for i in range(K)], 1)
    direct = direct + bias[None, :, None, :] if sets > 1 else direct + bias[0]
    assert torch.allclose(folded, direct, atol=1e-10)
    grad = torch.randn_like(direct)
    inputs = (c, x, qk_w, v_w, gate_w)
    for g, w in zip(
        torch.autograd.grad(folded, inputs, grad),
        torch.autograd.grad(direct, inputs, grad),
        strict=True,
    ):
        assert torch.allclose(g, w, atol=1e-10)


def test_head_norm_normalises_each_head_and_adds_the_skip():
    B, K, NH, N, DH = 2, 3, 3, 5, 4
    h = torch.randn(B * K, NH, N, DH) * 3 + 1
    c = torch.randn(B, K, N, NH * DH)
    weight, skip = torch.rand(1, NH * DH) + 0.5, torch.randn(1, NH * DH)
    out = layers.head_norm(h, weight, c, skip)
    normed = ((out - skip * c) / weight).view(B, K, N, NH, DH)
    assert torch.allclose(normed.mean(-1), torch.zeros(()), atol=1e-5)
    assert torch.allclose(normed.var(-1, unbiased=False), torch.ones(()), atol=1e-3)
    # token n of head j is the cell's (j, n) row
    assert torch.allclose(normed[1, 2, 4, 1], F.layer_norm(h[5, 1, 4], (DH,)), atol=1e-5)


@pytest.mark.parametrize("sets", [1, 3])
def test_head_norm_gradients_equal_autograd_of_the_formula(sets):
    """The hand-written backward (per-set weight sums) against autograd, float64."""
    B, K, NH, N, DH = 2, 3, 2, 5, 4
    C = NH * DH
    h = torch.randn(B * K, NH, N, DH, dtype=torch.float64, requires_grad=True)
    c = torch.randn(B, K, N, C, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(sets, C, dtype=torch.float64, requires_grad=True)
    skip = torch.randn(sets, C, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(B, K, N, C, dtype=torch.float64)
    hn = F.layer_norm(h, (DH,), eps=1e-5).view(B, K, NH, N, DH).transpose(2, 3)
    ref = skip[:, None, :] * c + (hn.reshape(B, K, N, C) * weight[:, None, :])
    out = layers.head_norm(h, weight, c, skip)
    assert torch.allclose(out, ref, atol=1e-12)
    inputs = (h, c, weight, skip)
    got = torch.autograd.grad(out, inputs, grad)
    want = torch.autograd.grad(ref, inputs, grad)
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-10)
