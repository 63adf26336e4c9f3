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


def write_cifar(root: Path, name: str = "cifar10", per_class: int = 4, n_test: int = 2) -> Path:
    """A small copy in torchvision's exact CIFAR layout: pickled batches + meta under
    ``root/cifar-10-batches-py/`` (5 data batches, test_batch, batches.meta) or
    ``root/cifar-100-python/`` (train, test, meta with fine/coarse labels). Images are
    random (all distinct) so tests can recognise them; md5s differ from the real files.
    """
    import pickle

    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    k = 10 if name == "cifar10" else 100
    folder = root / cls.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0 if name == "cifar10" else 1)
    label_key = "labels" if name == "cifar10" else "fine_labels"

    def batch(labels: list[int]) -> dict:
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        out = {"data": data, label_key: labels, "filenames": [f"{i}.png" for i in labels]}
        if name == "cifar100":
            out["coarse_labels"] = [y // 5 for y in labels]
        return out

    train = [y for y in range(k) for _ in range(per_class)]
    parts = [train[i :: len(cls.train_list)] for i in range(len(cls.train_list))]
    for (fname, _), labels in zip(cls.train_list, parts, strict=True):
        (folder / fname).write_bytes(pickle.dumps(batch(labels)))
    test = [y for y in range(k) for _ in range(n_test)]
    (folder / cls.test_list[0][0]).write_bytes(pickle.dumps(batch(test)))
    names = [f"class{y:03d}" for y in range(k)]
    (folder / cls.meta["filename"]).write_bytes(pickle.dumps({cls.meta["key"]: names}))
    return root


@pytest.fixture
def cifar_md5_unchecked(monkeypatch):
    """Accept our small CIFAR copies: patch only torchvision's md5 check (file must exist)."""
    import os

    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


TINY_WNIDS = ["n01443537", "n01629819", "n01641577"]


def make_tiny_imagenet(root: Path, wnids=TINY_WNIDS, n_train: int = 4, n_val: int = 2) -> Path:
    """Tiny-ImageNet-200's layout: train/<wnid>/images/<wnid>_<i>.JPEG (+ boxes file),
    val/images/val_<i>.JPEG labelled by val/val_annotations.txt, wnids.txt, words.txt."""
    for k, w in enumerate(wnids):
        for i in range(n_train):
            write_jpeg(root / "train" / w / "images" / f"{w}_{i}.JPEG", 100 * k + i, (64, 64))
        (root / "train" / w / f"{w}_boxes.txt").write_text(f"{w}_0.JPEG\t0\t0\t63\t63\n")
    lines = []
    for i in range(n_val * len(wnids)):
        write_jpeg(root / "val" / "images" / f"val_{i}.JPEG", 9000 + i, (64, 64))
        lines.append(f"val_{i}.JPEG\t{wnids[i % len(wnids)]}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (root / "wnids.txt").write_text("\n".join(reversed(wnids)) + "\n")  # any order
    (root / "words.txt").write_text("\n".join(f"{w}\tthing {w}" for w in wnids) + "\n")
    write_jpeg(root / "test" / "images" / "test_0.JPEG", 1, (64, 64))  # unlabelled: unused
    return root
