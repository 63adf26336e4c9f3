"""CIFAR-10/100 and Tiny-ImageNet from small copies in their real on-disk formats."""

from __future__ import annotations

import pickle

import pytest
import torch

from ablations.data import DataConfig, DataConfigError, build_datasets, describe

try:
    from data_fixtures import (
        TINY_WNIDS,
        cifar_md5_unchecked,  # noqa: F401  (fixture)
        make_tiny_imagenet,
        write_cifar,
    )
except ImportError:  # tests/ imported as a package
    from tests.data_fixtures import (  # noqa: F401
        TINY_WNIDS,
        cifar_md5_unchecked,
        make_tiny_imagenet,
        write_cifar,
    )


def _one_line(err: pytest.ExceptionInfo, *words: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("name, k", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_loads_torchvisions_format(tmp_path, cifar_md5_unchecked, name, k):
    root = write_cifar(tmp_path, name, per_class=3, n_test=2)
    b = build_datasets(DataConfig(dataset=name, root=str(root), img_size=32, augment="none"))
    assert b.num_classes == k and b.class_names == [f"class{y:03d}" for y in range(k)]
    assert b.info["counts"] == {"train": 3 * k, "val": 2 * k}
    assert set(b.info["train_per_class"].values()) == {3} and b.info["cache"] is None
    assert sorted(b.train.targets) == sorted(y for y in range(k) for _ in range(3))
    # Pixels are torchvision's: image i of the training set, as CHW uint8.
    from torchvision import datasets

    tv = getattr(datasets, name.upper())(str(root), train=True)
    first = torch.from_numpy(tv.data[0]).permute(2, 0, 1)
    assert torch.equal(b.train.images[0], first) and b.train.targets[0] == tv.targets[0]
    x, _ = b.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    up = build_datasets(DataConfig(dataset=name, root=str(root), img_size=64))
    assert up.val[0][0].shape == (3, 64, 64)  # any img_size: resized on the fly


def test_cifar_missing_and_corrupted_copies_give_one_line(tmp_path, monkeypatch):
    cfg = DataConfig(dataset="cifar10", root=str(tmp_path / "none"), img_size=32)
    with pytest.raises(DataConfigError) as err:
        build_datasets(cfg)
    _one_line(err, "cifar-10-batches-py/data_batch_1", "missing", "data.download: true")
    root = write_cifar(tmp_path / "c", "cifar10", per_class=1)
    with pytest.raises(DataConfigError) as err:  # the real md5 check rejects our copy
        build_datasets(DataConfig(dataset="cifar10", root=str(root), img_size=32))
    _one_line(err, "cifar-10-batches-py", "corrupted", "md5")


def test_cifar_unreadable_pickle_gives_one_line(tmp_path, cifar_md5_unchecked):
    root = write_cifar(tmp_path, "cifar100", per_class=1)
    (root / "cifar-100-python" / "train").write_bytes(pickle.dumps({"data": [1, 2]})[:-3])
    with pytest.raises(DataConfigError) as err:
        build_datasets(DataConfig(dataset="cifar100", root=str(root), img_size=32))
    _one_line(err, "cifar-100-python", "cannot read cifar100")


def test_cifar_download_goes_through_torchvision(tmp_path, cifar_md5_unchecked, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    calls = []

    def fake_download(url, root, filename=None, md5=None):  # no network in tests
        calls.append((url, filename))
        write_cifar(tmp_path / "dl", "cifar10", per_class=1)

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fake_download)
    cfg = DataConfig(dataset="cifar10", root=str(tmp_path / "dl"), download=True, img_size=32)
    assert len(build_datasets(cfg).train) == 10
    assert calls == [(tv_cifar.CIFAR10.url, "cifar-10-python.tar.gz")]
    build_datasets(cfg)
    assert len(calls) == 1  # present now: not fetched again


@pytest.mark.parametrize("cache", [True, False])
def test_tiny_imagenet_layout(tmp_path, cache):
    root = make_tiny_imagenet(tmp_path / "tiny-imagenet-200", n_train=4, n_val=2)
    cfg = DataConfig(
        dataset="tiny_imagenet", root=str(root), img_size=64, cache=cache,
        cache_dir=str(tmp_path / "cache"), augment="none",
    )  # fmt: skip
    b = build_datasets(cfg)
    assert b.class_names == sorted(TINY_WNIDS) and b.info["counts"] == {"train": 12, "val": 6}
    assert b.info["val_labels"].endswith("val_annotations.txt") and b.info["skipped"] == []
    assert sorted(b.val.targets) == [0, 0, 1, 1, 2, 2]
    assert b.val.targets[:3] == [0, 1, 2]  # val_0 -> first wnid, val_1 -> second, ...
    x, _ = b.val[0]
    assert x.shape == (3, 64, 64)


def test_tiny_imagenet_val_already_in_class_folders(tmp_path):
    root = make_tiny_imagenet(tmp_path / "t", n_val=1)
    for i, w in enumerate(TINY_WNIDS):
        (root / "val" / w).mkdir()
        (root / "val" / "images" / f"val_{i}.JPEG").rename(root / "val" / w / f"v{i}.JPEG")
    (root / "val" / "images").rmdir()
    s = describe(DataConfig(dataset="tiny_imagenet", root=str(root)))
    assert (s.num_classes, s.train_images, s.val_images) == (3, 12, 3)


@pytest.mark.parametrize(
    "damage, words",
    [
        (
            lambda r: (r / "val" / "val_annotations.txt").unlink(),
            ["val_annotations.txt", "missing"],
        ),
        (
            lambda r: (r / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99999999\t0\n"),
            ["val_annotations.txt:1", "n99999999", "a train class"],
        ),
        (lambda r: (r / "wnids.txt").write_text("n01443537\n"), ["wnids.txt", "1 classes"]),
        (lambda r: __import__("shutil").rmtree(r / "val"), ["val: no such folder", "images/"]),
        (
            lambda r: __import__("shutil").rmtree(r / "train" / "n01629819" / "images"),
            ["n01629819/images", "class folder missing"],
        ),
    ],
)
def test_tiny_imagenet_bad_copies_give_one_line(tmp_path, damage, words):
    root = make_tiny_imagenet(tmp_path / "t")
    damage(root)
    with pytest.raises(DataConfigError) as err:
        describe(DataConfig(dataset="tiny_imagenet", root=str(root)))
    _one_line(err, *words)
