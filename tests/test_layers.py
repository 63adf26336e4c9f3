"""Building blocks against their PyTorch definitions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vil import layers


def test_causal_conv_equals_truncated_conv1d():
    B, K, N, C, W = 2, 3, 9, 5, 4
    x = torch.randn(B, K, N, C)
    weight, bias = torch.randn(K, C, W), torch.randn(K, C)
    out = layers.causal_conv(x, weight, bias)
    for k in range(K):
        xin = x[:, k].transpose(1, 2)  # (B, C, N)
        ref = F.conv1d(xin, weight[k].unsqueeze(1), bias[k], padding=W - 1, groups=C)[..., :N]
        assert torch.allclose(out[:, k], ref.transpose(1, 2), atol=1e-6)
    shared = layers.causal_conv(x, weight[:1], bias[:1])  # one set broadcast over directions
    assert torch.allclose(shared[:, 2], layers.causal_conv(x[:, 2:3], weight[:1], bias[:1])[:, 0])


def test_headwise_is_block_diagonal():
    B, K, N, C, bs = 1, 2, 3, 8, 4
    x = torch.randn(B, K, N, C)
    weight = torch.randn(K, C // bs, bs, bs)
    out = layers.headwise(x, weight)
    for k in range(K):
        dense = torch.block_diag(*weight[k])  # (C_out, C_in)
        assert torch.allclose(out[:, k], x[:, k] @ dense.T, atol=1e-6)


def test_head_norm_normalises_each_head():
    h = torch.randn(2, 1, 5, 12) * 3 + 1
    out = layers.head_norm(h, torch.ones(1, 12), num_heads=3).view(2, 1, 5, 3, 4)
    assert torch.allclose(out.mean(-1), torch.zeros(()), atol=1e-5)
    assert torch.allclose(out.var(-1, unbiased=False), torch.ones(()), atol=1e-3)
