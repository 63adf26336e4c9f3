"""The train/eval transforms for uint8 tensors (cache, synthetic), fused for speed.

Same recipe and parameter distributions as the torchvision v2 pipeline in
``transforms.py``, built from torchvision v2 functionals, except for the two ops that
dominate its CPU cost: Gaussian blur (a dense 13x13 conv there; two 1-D passes of shifted
sums here, same kernel, same reflect padding) and solarize (one ``torch.where``). The
image becomes float once and normalisation is fused, instead of uint8 <-> float round
trips inside every op. Tests check each op against torchvision. Randomness comes from
the global torch RNG: ``torch.manual_seed`` (and DataLoader worker seeding) reproduce it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as tnn
from torchvision.transforms.v2 import functional as F

from .recipe import (
    BICUBIC,
    SOLARIZE_THRESHOLD,
    blur_kernel_size,
    blur_sigma,
    gaussian_weights,
    gray,
    jitter_factor,
    normalize,
)


def gaussian_kernel(sigma: float, kernel_size: int) -> list[float]:
    """The normalised 1-D Gaussian weights torchvision uses for this sigma and size."""
    return gaussian_weights(torch.tensor([sigma]), kernel_size)[0].tolist()


def _blur_last_dim(x: torch.Tensor, k: list[float]) -> torch.Tensor:
    half, n = len(k) // 2, x.shape[-1]
    p = tnn.pad(x, (half, half), mode="reflect")  # (C, H, W): pads the last dim
    out = p[..., 0:n] * k[0]
    for i in range(1, len(k)):  # a weighted sum of shifted views: cheap on small images
        out.add_(p[..., i : i + n], alpha=k[i])
    return out


def gaussian_blur(x: torch.Tensor, sigma: float, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur of a float (C, H, W) image, as F.gaussian_blur computes it."""
    k = gaussian_kernel(sigma, kernel_size)
    return _blur_last_dim(_blur_last_dim(x, k).transpose(-1, -2), k).transpose(-1, -2)


def rrc_params(height: int, width: int, u: list[float]) -> tuple[int, int, int, int]:
    """RandomResizedCrop.get_params (scale 0.08-1, ratio 3/4-4/3) from 40 uniforms.

    The same algorithm as torchvision (10 tries, then a central crop), drawing its numbers
    from ``u`` instead of 40 tiny torch calls.
    """
    area = height * width
    log_lo, log_hi = math.log(3 / 4), math.log(4 / 3)
    for t in range(10):
        target = area * (0.08 + 0.92 * u[4 * t])
        aspect = math.exp(log_lo + (log_hi - log_lo) * u[4 * t + 1])
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = min(int(u[4 * t + 2] * (height - h + 1)), height - h)
            j = min(int(u[4 * t + 3] * (width - w + 1)), width - w)
            return i, j, h, w
    in_ratio = width / height  # fallback: the whole image, clipped to the ratio range
    w, h = width, height
    if in_ratio < 3 / 4:
        h = int(round(width / (3 / 4)))
    elif in_ratio > 4 / 3:
        w = int(round(height * (4 / 3)))
    return (height - h) // 2, (width - w) // 2, h, w


def color_jitter(x: torch.Tensor, order: list[int], factors: list[float]) -> torch.Tensor:
    """ColorJitter's brightness (0) / contrast (1) / saturation (2) on a float [0, 1] image."""
    for op in order:
        f = factors[op]
        if op == 0:
            x = (x * f).clamp_(0, 1)
        elif op == 1:
            x = (x * f).add_((1 - f) * gray(x).mean()).clamp_(0, 1)
        else:
            x = (x * f).add_((1 - f) * gray(x)).clamp_(0, 1)
    return x


class TensorTransform:
    """uint8 (3, H, W) -> normalised float (3, img_size, img_size) for one augment preset.

    ``source="square"``: a square larger than img_size (cache); ``"exact"``: img_size already.
    """

    def __init__(self, augment: str, img_size: int, source: str) -> None:
        if augment not in ("paper", "light", "none") or source not in ("square", "exact"):
            raise ValueError(f"TensorTransform: bad augment={augment!r} or source={source!r}")
        self.augment, self.img_size, self.source = augment, img_size, source
        self.pad = max(1, img_size // 16)
        self.kernel = blur_kernel_size(img_size)

    def __repr__(self) -> str:
        return f"TensorTransform(augment={self.augment!r}, img_size={self.img_size})"

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        if self.source == "square" and x.shape[-1] != self.img_size:
            return F.resize(
                x, [self.img_size, self.img_size], interpolation=BICUBIC, antialias=True
            )
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.augment == "paper":
            u = torch.rand(49).tolist()  # every random number of this image in one call
            i, j, h, w = rrc_params(x.shape[-2], x.shape[-1], u[:40])
            size = [self.img_size, self.img_size]
            x = F.resized_crop(x, i, j, h, w, size, interpolation=BICUBIC, antialias=True)
            x = self._paper_colour(x.float().div_(255), u[40:])
        else:
            x = self._view(x)
            if self.augment == "light":
                x = F.pad(x, [self.pad] * 4, padding_mode="edge")
                dy, dx = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
                x = x[:, dy : dy + self.img_size, dx : dx + self.img_size]
            x = x.float().div_(255)
        return normalize(x)

    def _paper_colour(self, x: torch.Tensor, u: list[float]) -> torch.Tensor:
        """Flip, 3-Augment, ColorJitter(0.3, 0.3, 0.3, 0) on a float image in [0, 1]."""
        if u[0] < 0.5:
            x = x.flip(-1)
        choice = min(int(u[1] * 3), 2)
        if choice == 0:
            x = gray(x).expand(3, -1, -1)
        elif choice == 1:
            x = torch.where(x >= SOLARIZE_THRESHOLD, 1.0 - x, x)
        else:
            x = gaussian_blur(x, blur_sigma(u[2]), self.kernel)
        order = sorted(range(3), key=lambda k: u[3 + k])  # a uniform random permutation
        return color_jitter(x, order, [jitter_factor(v) for v in u[6:9]])
