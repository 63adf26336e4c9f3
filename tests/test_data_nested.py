"""Image folders: images in sub-folders of a class folder belong to that class (torchvision)."""

from __future__ import annotations

import os

from ablations.data import DataConfig, describe

try:
    from data_fixtures import make_tree, write_jpeg
except ImportError:  # tests/ imported as a package
    from tests.data_fixtures import make_tree, write_jpeg


def test_images_in_subfolders_count_like_torchvision(tmp_path):
    root = make_tree(tmp_path / "r", ["cat", "dog"], n_train=2, n_val=1)
    write_jpeg(root / "train" / "cat" / "sub" / "a.jpg", 1)
    write_jpeg(root / "train" / "cat" / "sub" / "deeper" / "b.png", 2, fmt="PNG")
    write_jpeg(root / "val" / "dog" / "sub" / "c.jpg", 3)
    (root / "train" / "dog" / ".hidden").mkdir()
    write_jpeg(root / "train" / "dog" / ".hidden" / "d.jpg", 4)  # hidden: not a sample
    os.symlink(root / "train" / "cat", root / "train" / "cat" / "sub" / "loop")  # no cycle
    cfg = DataConfig(dataset="imagefolder", root=str(root), img_size=32)
    d = describe(cfg)
    assert d.class_names == ["cat", "dog"] and (d.train_images, d.val_images) == (6, 3)
    from torchvision.datasets import ImageFolder

    tv = ImageFolder(str(root / "val"))
    assert len(tv) == d.val_images
