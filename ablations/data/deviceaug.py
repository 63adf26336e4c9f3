"""Opt-in device-side paper augmentation of uint8 cache batches (``data.augment_on=device``).

Why: at 128 px one CPU worker augments a few hundred images/s (``vil-ablate doctor``), while
a GPU trains ViL-T several times faster than a machine's cores can feed it. With this path
the loader workers only copy uint8 squares out of the cache; the training device does
RandomResizedCrop, flip, 3-Augment, ColorJitter and normalisation per sample, batched.

Same recipe and the same parameter distributions as ``fastaug.TensorTransform``: each image
draws the same 49 uniforms, mapped to parameters by the same formulas (tests check that the
boxes and the colour ops equal fastaug's for the same numbers). One difference: the crop is
resampled with ``grid_sample`` (bicubic, a=-0.75, no antialiasing) rather than torchvision's
antialiased bicubic (a=-0.5); from the cache's 146 px squares to 128 px the strongest
downscale is 1.14x, so the missing antialiasing changes little (tested to a tolerance).
To stay free of host syncs every 3-Augment branch and every jitter order is computed for
every image and the right one selected by mask: cheap on a GPU, but on a CPU this path is
~5x slower than the workers' fused one (results/benchmarks.md): use it on GPUs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as tnn

from .recipe import (
    SOLARIZE_THRESHOLD,
    blur_kernel_size,
    blur_sigma,
    gaussian_weights,
    gray,
    jitter_factor,
    normalize,
)

N_UNIFORMS = 49  # per image, laid out as in fastaug.TensorTransform.__call__


def rrc_boxes(height: int, width: int, u: torch.Tensor) -> torch.Tensor:
    """(B, 4) int64 boxes (i, j, h, w): fastaug.rrc_params for each row of u (B, 40)."""
    u = u.double()
    area = height * width
    log_lo, log_hi = math.log(3 / 4), math.log(4 / 3)
    target = area * (0.08 + 0.92 * u[:, 0::4])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, 1::4])
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    i = torch.minimum(torch.floor(u[:, 2::4] * (height - h + 1)), height - h)
    j = torch.minimum(torch.floor(u[:, 3::4] * (width - w + 1)), width - w)
    first = ok.int().argmax(dim=1, keepdim=True)  # the first try that fits, as torchvision
    box = torch.stack([t.gather(1, first)[:, 0] for t in (i, j, h, w)], dim=1)
    fw, fh = width, height  # fallback: the whole image, clipped to the ratio range
    if width / height < 3 / 4:
        fh = int(round(width / (3 / 4)))
    elif width / height > 4 / 3:
        fw = int(round(height * (4 / 3)))
    fallback = torch.tensor([(height - fh) // 2, (width - fw) // 2, fh, fw], dtype=box.dtype)
    box = torch.where(ok.any(dim=1, keepdim=True), box, fallback.to(box.device))
    return box.long()


def resized_crops(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crop box k of image k and resize it to (size, size): one batched grid_sample."""
    B, _, H, W = x.shape
    i, j, h, w = boxes.to(x.dtype).unbind(1)
    theta = torch.zeros(B, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = w / W, (2 * j + w) / W - 1
    theta[:, 1, 1], theta[:, 1, 2] = h / H, (2 * i + h) / H - 1
    grid = tnn.affine_grid(theta, [B, 3, size, size], align_corners=False)
    out = tnn.grid_sample(x, grid, mode="bicubic", padding_mode="border", align_corners=False)
    return out.clamp_(0, 1)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Per-image sigma, separable, reflect padding: fastaug.gaussian_blur for each image."""
    B, C, H, W = x.shape
    half = kernel_size // 2
    k = gaussian_weights(sigma.to(x.dtype), kernel_size).repeat_interleave(C, 0)  # (B*C, K)
    y = tnn.pad(x.reshape(1, B * C, H, W), (half, half, 0, 0), mode="reflect")
    y = tnn.conv2d(y, k.view(B * C, 1, 1, kernel_size), groups=B * C)
    y = tnn.pad(y, (0, 0, half, half), mode="reflect")
    y = tnn.conv2d(y, k.view(B * C, 1, kernel_size, 1), groups=B * C)
    return y.view(B, C, H, W)


def _pick(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


def paper_colour(x: torch.Tensor, u: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Flip, 3-Augment, ColorJitter(0.3, 0.3, 0.3) per image of a float [0, 1] batch;
    ``u`` (B, 9): fastaug.TensorTransform._paper_colour's numbers for each image."""
    x = _pick(u[:, 0] < 0.5, x.flip(-1), x)
    choice = torch.clamp((u[:, 1] * 3).long(), max=2)
    grey = gray(x).expand_as(x)
    solar = torch.where(x >= SOLARIZE_THRESHOLD, 1.0 - x, x)
    blurred = gaussian_blur(x, blur_sigma(u[:, 2]), kernel_size)
    x = _pick(choice == 0, grey, _pick(choice == 1, solar, blurred))
    order = torch.argsort(u[:, 3:6], dim=1)  # a uniform random permutation, as fastaug
    factors = jitter_factor(u[:, 6:9]).to(x.dtype)
    for step in range(3):
        op = order[:, step]
        f = factors.gather(1, op.view(-1, 1)).view(-1, 1, 1, 1)
        g = gray(x)
        bright = x * f
        contrast = x * f + (1 - f) * g.mean(dim=(1, 2, 3), keepdim=True)
        saturate = x * f + (1 - f) * g
        x = _pick(op == 0, bright, _pick(op == 1, contrast, saturate)).clamp_(0, 1)
    return x


class DeviceAugment:
    """uint8 (B, 3, S, S) batch on the device -> normalised float (B, 3, size, size)."""

    def __init__(self, img_size: int) -> None:
        self.img_size, self.kernel = img_size, blur_kernel_size(img_size)

    def __repr__(self) -> str:
        return f"DeviceAugment(img_size={self.img_size})"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255)
        u = torch.rand(x.size(0), N_UNIFORMS, device=x.device)  # the global (device) RNG
        x = resized_crops(x, rrc_boxes(x.size(-2), x.size(-1), u[:, :40]), self.img_size)
        x = paper_colour(x, u[:, 40:], self.kernel)
        return normalize(x)
