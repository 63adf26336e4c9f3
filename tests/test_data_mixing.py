"""Batch Mixup/CutMix: soft targets sum to 1, deterministic under a seed."""

from __future__ import annotations

import torch

from ablations.data import DataConfig, make_batch_mixer


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, 16, 16, generator=g), torch.arange(8) % 5


def test_targets_sum_to_one_and_images_change():
    mix = make_batch_mixer(DataConfig(), num_classes=5)
    x, y = _batch()
    changed = 0
    for seed in range(20):
        out, t = mix(x, y, torch.Generator().manual_seed(seed))
        assert t.shape == (8, 5) and torch.allclose(t.sum(1), torch.ones(8))
        changed += int(not torch.equal(out, x))
    assert changed == 20  # p_mixup + p_cutmix = 1: every batch is mixed


def test_deterministic_with_generator_and_global_seed():
    mix = make_batch_mixer(DataConfig(), num_classes=5)
    x, y = _batch()
    a = mix(x, y, torch.Generator().manual_seed(3))
    b = mix(x, y, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    torch.manual_seed(7)
    c = mix(x, y)
    torch.manual_seed(7)
    d = mix(x, y)
    assert torch.equal(c[0], d[0]) and torch.equal(c[1], d[1])


def test_identity_when_disabled():
    mix = make_batch_mixer(DataConfig(mixup_alpha=0.0, cutmix_alpha=0.0), num_classes=5)
    x, y = _batch()
    out, t = mix(x, y)
    assert torch.equal(out, x) and torch.equal(t, torch.nn.functional.one_hot(y, 5).float())


def test_cutmix_only_keeps_pixels_of_two_images():
    cfg = DataConfig(mixup_alpha=0.0, mixup_prob=0.0, cutmix_prob=1.0)
    mix = make_batch_mixer(cfg, num_classes=5)
    x, y = _batch()
    out, t = mix(x, y, torch.Generator().manual_seed(1))
    from_self = out == x
    from_prev = out == x.roll(1, 0)
    assert (from_self | from_prev).all()
    lam = from_self[0, 0].float().mean()  # fraction of the image kept
    assert torch.allclose(t[0, y[0]] + (t[0, y[-1]] if y[-1] != y[0] else 0), torch.tensor(1.0))
    assert 0.0 <= float(lam) <= 1.0


def test_mixup_only_targets_match_lambda():
    cfg = DataConfig(cutmix_alpha=0.0, mixup_prob=1.0, cutmix_prob=0.0)
    mix = make_batch_mixer(cfg, num_classes=8)
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    out, t = mix(x, y, torch.Generator().manual_seed(2))
    lam = t[0, 0]
    assert torch.allclose(out, x * lam + x.roll(1, 0) * (1 - lam), atol=1e-6)
