"""The built-in synthetic task: deterministic, balanced, seed-dependent, fast to build."""

from __future__ import annotations

import time

import torch

from ablations.data import DataConfig, build_datasets
from ablations.data.synthetic import SyntheticDataset, class_names, generate, glyph_vocabulary


def test_same_seed_same_bytes():
    a, la = generate(0, "train", 300, 100, 32)
    b, lb = generate(0, "train", 300, 100, 32)
    assert a.tobytes() == b.tobytes() and (la == lb).all()


def test_different_seeds_and_splits_differ():
    a, _ = generate(0, "train", 50, 100, 32)
    b, _ = generate(1, "train", 50, 100, 32)
    c, _ = generate(0, "val", 50, 100, 32)
    assert (a != b).mean() > 0.5 and (a != c).mean() > 0.5


def test_image_i_does_not_depend_on_split_size():
    a, _ = generate(3, "train", 40, 10, 32)
    b, _ = generate(3, "train", 3000, 10, 32)
    assert (a == b[:40]).all()


def test_labels_balanced_and_in_range():
    _, labels = generate(0, "train", 1000, 100, 32)
    counts = torch.bincount(torch.from_numpy(labels), minlength=100)
    assert counts.min() == counts.max() == 10


def test_vocabulary_and_names():
    assert len(glyph_vocabulary(100)) == 10
    assert len(set(glyph_vocabulary(400))) == 20  # all glyphs distinct
    names = class_names(100)
    assert len(set(names)) == 100 and names[12] == "green-disk|blue-triangle"


def test_build_is_fast_enough():
    t = time.perf_counter()
    ds = SyntheticDataset("train", 4000, 100, 32, seed=0)
    assert time.perf_counter() - t < 10  # ~0.3 s on one core; generous for shared CI
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (4000, 3, 32, 32)


def test_build_datasets_synthetic():
    cfg = DataConfig(img_size=32, train_samples=200, val_samples=100, augment="light")
    bundle = build_datasets(cfg)
    x, y = bundle.train[5]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 5
    assert bundle.num_classes == 100 and len(bundle.class_names) == 100
    assert bundle.info["counts"] == {"train": 200, "val": 100}
    xv, _ = bundle.val[0]
    xv2, _ = bundle.val[0]
    assert torch.equal(xv, xv2)  # eval view is deterministic
    assert abs(float(xv.mean())) < 2.0


def test_other_sizes_and_class_counts():
    ds = SyntheticDataset("val", 20, 10, 64, seed=0)
    assert ds.images.shape == (20, 3, 64, 64) and int(ds.labels.max()) == 9
