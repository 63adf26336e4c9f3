"""Train/eval transforms, shared by every dataset.

Decoded files (PIL images, ``source="raw"``) go through a torchvision transforms v2
pipeline: augmentations on the uint8 data, then ``ToImage -> ToDtype -> Normalize``.
uint8 tensors (the cache, the synthetic data) go through ``fastaug.TensorTransform``: the
same recipe, fused (about 2x cheaper on CPU than the v2 pipeline, see ``fastaug.py``).
``v2_train_transform`` also accepts uint8 tensors, for comparison.

``source`` says what the input looks like:
- ``"raw"``: any size (decoded files): eval is Resize(shorter side) + CenterCrop.
- ``"square"``: a square larger than ``img_size`` (the uint8 cache): eval is Resize.
- ``"exact"``: already ``img_size`` square (synthetic data, cached val images): eval is a no-op.

Augment presets:
- ``"paper"``: ViL / DeiT-III recipe: RandomResizedCrop(scale 0.08-1, bicubic), horizontal
  flip, 3-Augment (one of grayscale / solarize / Gaussian blur sigma 0.1-2), ColorJitter
  0.3/0.3/0.3/0. Mixup/CutMix are batch-level (see ``mixing.py``).
- ``"light"``: eval view plus a random shift of up to img_size/16 px (edge padding). No flips
  and no colour changes: the synthetic task's labels depend on left/right and on colours.
- ``"none"``: the eval view.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from .fastaug import TensorTransform
from .recipe import BICUBIC, IMAGENET_MEAN, IMAGENET_STD, SOURCES, blur_kernel_size  # noqa: F401


def _to_float() -> list[v2.Transform]:
    return [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ]


def _eval_view(img_size: int, source: str) -> list[v2.Transform]:
    if source not in SOURCES:
        raise ValueError(f"unknown transform source {source!r}; valid: {', '.join(SOURCES)}")
    if source == "raw":
        return [
            v2.Resize(img_size, interpolation=BICUBIC, antialias=True),
            v2.CenterCrop(img_size),
        ]
    if source == "square":
        return [v2.Resize(img_size, interpolation=BICUBIC, antialias=True)]
    return []


def three_augment(img_size: int) -> v2.Transform:
    """DeiT-III 3-Augment: exactly one of grayscale, solarize, Gaussian blur per image."""
    kernel = blur_kernel_size(img_size)
    return v2.RandomChoice(
        [
            v2.Grayscale(num_output_channels=3),
            v2.RandomSolarize(threshold=128, p=1.0),  # applied to uint8 data: 0..255 scale
            v2.GaussianBlur(kernel_size=kernel, sigma=(0.1, 2.0)),
        ]
    )


def v2_train_transform(augment: str, img_size: int, source: str) -> v2.Compose:
    """The torchvision v2 training pipeline for ``augment`` in {"paper", "light", "none"}."""
    if augment == "paper":
        steps = [
            v2.RandomResizedCrop(
                img_size, scale=(0.08, 1.0), interpolation=BICUBIC, antialias=True
            ),
            v2.RandomHorizontalFlip(),
            three_augment(img_size),
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.0),
        ]
    elif augment == "light":
        pad = max(1, img_size // 16)
        steps = _eval_view(img_size, source) + [
            v2.RandomCrop(img_size, padding=pad, padding_mode="edge")
        ]
    elif augment == "none":
        steps = _eval_view(img_size, source)
    else:
        raise ValueError(f"unknown data.augment={augment!r}; valid: paper, light, none")
    return v2.Compose(steps + _to_float())


def train_transform(augment: str, img_size: int, source: str):
    """Training transform for ``source``: v2 for decoded files, fused for uint8 tensors."""
    if source == "raw":
        return v2_train_transform(augment, img_size, source)
    return TensorTransform(augment, img_size, source)


def eval_transform(img_size: int, source: str):
    """Eval transform for ``source`` (see ``train_transform``)."""
    return train_transform("none", img_size, source)
