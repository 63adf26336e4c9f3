"""Helpers for the data tests: tiny generated image trees and every kind of bad file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared"
MINI = SHARED / "data" / "imagenet-mini"
WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]  # 4 real wnids, sorted


def need_mini() -> Path:
    """The shared ImageNet-mini folder, or skip the test when this checkout has none."""
    if not (MINI / "train").is_dir():
        pytest.skip(f"shared ImageNet files not present at {MINI}")
    return MINI


def image(seed: int, size=(40, 30), mode: str = "RGB") -> Image.Image:
    """A random image (non-square by default, to exercise crops)."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "CMYK": 4}[mode]
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(arr.squeeze(-1) if channels == 1 else arr, mode)


def write_jpeg(path: Path, seed: int, size=(40, 30), mode: str = "RGB", fmt="JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image(seed, size, mode).save(path, format=fmt, quality=90)
    return path


def make_tree(root: Path, classes: list[str], n_train: int = 3, n_val: int = 2) -> Path:
    """``root/train/<c>/*.JPEG`` and ``root/val/<c>/*.JPEG`` of small random images."""
    (root / "val").mkdir(parents=True, exist_ok=True)
    for k, c in enumerate(classes):
        for i in range(n_train):
            write_jpeg(root / "train" / c / f"{c}_{i}.JPEG", 1000 * k + i, (40 + i, 30 + k))
        for i in range(n_val):
            write_jpeg(root / "val" / c / f"{c}_val_{i}.JPEG", 5000 + 1000 * k + i)
    return root


def write_list(path: Path, wnids: list[str]) -> Path:
    path.write_text("# test list\n" + "\n".join(f"{w} some name" for w in wnids) + "\n")
    return path


def truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    image(7, (64, 64)).save(buf, format="JPEG", quality=95)
    data = buf.getvalue()
    return data[: len(data) // 2]


def bad_files(folder: Path) -> dict[str, Path]:
    """Write one file of each bad kind into ``folder``; return name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "zero": folder / "zero.JPEG",
        "truncated": folder / "truncated.JPEG",
        "random": folder / "random.JPEG",
        "text": folder / "notes.txt",
    }
    files["zero"].write_bytes(b"")
    files["truncated"].write_bytes(truncated_jpeg())
    files["random"].write_bytes(np.random.default_rng(3).bytes(3000))
    files["text"].write_text("not an image\n")
    return files


def odd_but_good_files(folder: Path) -> dict[str, Path]:
    """Files ImageNet really has that must decode fine: grayscale, CMYK, PNG behind .JPEG."""
    return {
        "gray": write_jpeg(folder / "gray.JPEG", 11, mode="L"),
        "cmyk": write_jpeg(folder / "cmyk.JPEG", 12, mode="CMYK"),
        "png": write_jpeg(folder / "png_inside.JPEG", 13, fmt="PNG"),
    }
