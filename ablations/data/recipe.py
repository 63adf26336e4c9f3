"""Constants of the paper's image recipe shared by the three augmentation paths (torchvision
v2 on decoded files, the fused tensor path, the device path)."""

from __future__ import annotations

from typing import Any

import torch
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SOURCES = ("raw", "square", "exact")
BICUBIC = InterpolationMode.BICUBIC


def blur_kernel_size(img_size: int) -> int:
    """Covers +-3 sigma of the largest sigma (2.0; PIL's radius is the sigma), odd, < side."""
    return min(13, img_size - 1 if img_size % 2 == 0 else img_size)


# The paper's colour recipe, written once for the fused CPU path (fastaug) and the device
# path (deviceaug), which draw the same uniforms u in [0, 1) per image:
SOLARIZE_THRESHOLD = 128 / 255  # the uint8 pipeline's threshold 128, on the 0..1 scale
LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def gray(x: torch.Tensor) -> torch.Tensor:
    """Luma of (..., 3, H, W) float images, shape (..., 1, H, W) (one image or a batch)."""
    r, g, b = LUMA
    return (r * x[..., 0, :, :] + g * x[..., 1, :, :] + b * x[..., 2, :, :]).unsqueeze(-3)


def blur_sigma(u: Any) -> Any:
    """GaussianBlur's sigma, uniform in [0.1, 2.0], from u (a float or a tensor)."""
    return 0.1 + 1.9 * u


def jitter_factor(u: Any) -> Any:
    """ColorJitter(0.3)'s brightness/contrast/saturation factor, uniform in [0.7, 1.3]."""
    return 0.7 + 0.6 * u


def gaussian_weights(sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """(B, K) normalised 1-D Gaussian weights, as torchvision computes them, per sigma (B,)."""
    half = kernel_size // 2
    t = torch.linspace(-half, half, kernel_size, device=sigma.device, dtype=sigma.dtype)
    k = torch.exp(-0.5 * (t / sigma.view(-1, 1)) ** 2)
    return k / k.sum(1, keepdim=True)


_NORM: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}  # per device, made once


def normalize(x: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation of float images (..., 3, H, W) in [0, 1], on their
    device; the constants are copied to a device once, not at every step."""
    if x.device not in _NORM:
        mean, std = (
            torch.tensor(v, device=x.device).view(3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD)
        )
        _NORM[x.device] = (mean, std)
    mean, std = _NORM[x.device]
    return (x - mean) / std
