"""A folder of photo-like JPEGs in the image-folder layout, for the loader checks (the doctor,
benchmarks/bench_data.py) where no real dataset is at hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZES = [(500, 375), (375, 500), (500, 333), (640, 480), (400, 400)]  # typical ImageNet


def make_jpegs(root: Path, n_images: int, n_classes: int, seed: int = 0) -> Path:
    """A folder of photo-like JPEGs (smooth colour fields + texture), train/ and val/."""
    rng = np.random.default_rng(seed)
    for i in range(n_images):
        w, h = SIZES[i % len(SIZES)]
        low = rng.integers(0, 256, (h // 25, w // 25, 3), dtype=np.uint8)
        img = Image.fromarray(low).resize((w, h), Image.BICUBIC)
        arr = np.asarray(img).astype(np.int16) + rng.integers(-20, 21, (h, w, 3))
        split = "val" if (i // n_classes) % 5 == 4 else "train"  # every class in both
        out = root / split / f"class{i % n_classes:03d}" / f"img{i:05d}.JPEG"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(out, quality=90)
    return root
