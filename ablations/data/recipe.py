"""Constants of the paper's image recipe shared by the three augmentation paths (torchvision
v2 on decoded files, the fused tensor path, the device path)."""

from __future__ import annotations

from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SOURCES = ("raw", "square", "exact")
BICUBIC = InterpolationMode.BICUBIC


def blur_kernel_size(img_size: int) -> int:
    """Covers +-3 sigma of the largest sigma (2.0; PIL's radius is the sigma), odd, < side."""
    return min(13, img_size - 1 if img_size % 2 == 0 else img_size)
