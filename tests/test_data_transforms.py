"""Transforms: the fused uint8-tensor pipeline matches torchvision op by op."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from ablations.data.fastaug import TensorTransform, color_jitter, gaussian_blur, rrc_params
from ablations.data.recipe import SOLARIZE_THRESHOLD, gray
from ablations.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transform,
    train_transform,
    v2_train_transform,
)


def _u8(h=40, w=40, seed=0):
    return torch.randint(
        0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def _denorm(x):
    return x * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)


@pytest.mark.parametrize("sigma", [0.1, 0.8, 2.0])
def test_blur_matches_torchvision(sigma):
    x = torch.rand(3, 30, 44)
    ref = F.gaussian_blur(x, [13, 13], [sigma, sigma])
    assert torch.allclose(gaussian_blur(x, sigma, 13), ref, atol=1e-5)


def test_solarize_matches_torchvision_uint8():
    x = _u8()
    ours = torch.where(x.float() / 255 >= SOLARIZE_THRESHOLD, 1 - x.float() / 255, x.float() / 255)
    assert torch.allclose(ours * 255, F.solarize(x, 128).float(), atol=1e-3)


@pytest.mark.parametrize("augment", ["paper", "light", "none"])
@pytest.mark.parametrize("source, side", [("square", 36), ("exact", 32)])
def test_tensor_pipeline_shapes_and_determinism(augment, source, side):
    tf = train_transform(augment, 32, source)
    assert isinstance(tf, TensorTransform)
    x = _u8(side, side)
    torch.manual_seed(1)
    a = tf(x)
    torch.manual_seed(1)
    b = tf(x)
    assert a.shape == (3, 32, 32) and a.dtype == torch.float32 and torch.equal(a, b)
    assert x.dtype == torch.uint8  # input untouched


def test_none_is_the_eval_view_and_light_is_a_small_shift():
    x = _u8(32, 32)
    ev = eval_transform(32, "exact")(x)
    assert torch.allclose(_denorm(ev) * 255, x.float(), atol=1e-3)
    shifted = train_transform("light", 32, "exact")
    torch.manual_seed(0)
    for _ in range(5):
        y = shifted(x)
        found = any(
            torch.allclose(y[:, 2:-2, 2:-2], ev[:, 2 + dy : 30 + dy, 2 + dx : 30 + dx], atol=1e-5)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        )
        assert found  # at most img_size/16 = 2 px, no flip, no colour change


def test_paper_pipeline_changes_images_within_range():
    x = _u8(36, 36)
    tf = train_transform("paper", 32, "square")
    torch.manual_seed(0)
    outs = torch.stack([tf(x) for _ in range(20)])
    assert outs.std(0).mean() > 0.1  # random crops / colours differ
    raw = _denorm(outs)
    assert raw.min() >= -1e-4 and raw.max() <= 1 + 1e-4  # ops clamp to [0, 1]


def test_raw_pipeline_on_pil_images():
    img = Image.new("RGB", (50, 30), (10, 200, 30))
    for tf in (v2_train_transform("paper", 32, "raw"), train_transform("light", 32, "raw")):
        out = tf(img)
        assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    ev = eval_transform(32, "raw")(img)
    assert torch.allclose(_denorm(ev)[:, 0, 0] * 255, torch.tensor([10.0, 200.0, 30.0]), atol=1)


def test_v2_pipeline_accepts_uint8_tensors():
    out = v2_train_transform("paper", 32, "square")(_u8(36, 36))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32


@pytest.mark.parametrize(
    "op, ref", [(0, F.adjust_brightness), (1, F.adjust_contrast), (2, F.adjust_saturation)]
)
@pytest.mark.parametrize("factor", [0.7, 1.0, 1.3])
def test_color_jitter_ops_match_torchvision(op, ref, factor):
    x = torch.rand(3, 20, 24)
    factors = [1.0, 1.0, 1.0]
    factors[op] = factor
    assert torch.allclose(color_jitter(x, [op], factors), ref(x, factor), atol=1e-5)


def test_grayscale_matches_torchvision():
    x = torch.rand(3, 10, 12)
    ref = F.rgb_to_grayscale(x, num_output_channels=1)
    assert torch.allclose(gray(x), ref, atol=1e-6)


def test_rrc_params_in_bounds_and_distributed_like_torchvision():
    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(0)
    ours = [rrc_params(36, 36, torch.rand(40).tolist()) for _ in range(2000)]
    x = torch.zeros(3, 36, 36)
    theirs = [RandomResizedCrop.get_params(x, (0.08, 1.0), (3 / 4, 4 / 3)) for _ in range(2000)]
    for i, j, h, w in ours:
        assert 0 <= i <= 36 - h and 0 <= j <= 36 - w and h > 0 and w > 0
    area = [torch.tensor([h * w / 36**2 for _, _, h, w in p]).mean() for p in (ours, theirs)]
    assert abs(float(area[0] - area[1])) < 0.03
    assert rrc_params(10, 40, [0.99] * 40) == (0, 13, 10, 13)  # fallback: central, ratio 4/3
