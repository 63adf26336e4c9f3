"""Subsets, the tuning split, provenance and describe: the same for every dataset kind."""

from __future__ import annotations

import dataclasses
import time

import pytest

from ablations.data import KINDS, DataConfig, DataProvenance, build_datasets, describe
from ablations.data.split import per_class_subset, tune_split

try:
    from data_fixtures import (
        WNIDS,
        cifar_md5_unchecked,  # noqa: F401  (fixture)
        make_tiny_imagenet,
        make_tree,
        need_mini,
        write_cifar,
        write_list,
    )
except ImportError:  # tests/ imported as a package
    from tests.data_fixtures import (  # noqa: F401
        WNIDS,
        cifar_md5_unchecked,
        make_tiny_imagenet,
        make_tree,
        need_mini,
        write_cifar,
        write_list,
    )


def test_per_class_subset_by_hand():
    labels = [0, 1, 0, 1, 0, 2]  # class 0 at 0,2,4; class 1 at 1,3; class 2 at 5
    keep = per_class_subset(labels, 1, seed=0, purpose="train")
    assert len(keep) == 3 and sorted(labels[i] for i in keep) == [0, 1, 2]
    assert keep == sorted(keep) and keep == per_class_subset(labels, 1, 0, "train")
    assert per_class_subset(labels, 5, 0, "train") == list(range(6))  # fewer than the cap
    assert per_class_subset(labels, None, 0, "train") == list(range(6))
    picks = {tuple(per_class_subset(labels, 1, s, "train")) for s in range(20)}
    assert len(picks) > 1  # data_seed decides the pick


def test_tune_split_is_stratified_and_disjoint():
    labels = [y for y in range(4) for _ in range(10)] + [4, 4]  # class 4: only 2 images
    train, held = tune_split(labels, 0.2, seed=3)
    assert not set(train) & set(held) and sorted(train + held) == list(range(42))
    per_class = [sum(labels[i] == y for i in held) for y in range(5)]
    assert per_class == [2, 2, 2, 2, 1]  # round(0.2 * 10) each; at least 1, at most n - 1
    assert (train, held) == tune_split(labels, 0.2, seed=3)
    assert held != tune_split(labels, 0.2, seed=4)[1]


def _copy(kind: str, tmp_path) -> DataConfig:
    """A small copy of each kind (6 images a class or more, so a tune split has room)."""
    cache_dir = str(tmp_path / "cache")
    if kind == "synthetic":
        return DataConfig(num_classes=4, train_samples=40, val_samples=8, img_size=32)
    if kind in ("cifar10", "cifar100"):
        return DataConfig(dataset=kind, root=str(write_cifar(tmp_path, kind, 6)), img_size=32)
    if kind == "tiny_imagenet":
        root = make_tiny_imagenet(tmp_path / "tiny", n_train=6)
        return DataConfig(dataset=kind, root=str(root), img_size=32, cache_dir=cache_dir)
    root = make_tree(tmp_path / "tree", WNIDS, n_train=6, n_val=2)
    if kind == "imagefolder":
        return DataConfig(dataset=kind, root=str(root), img_size=32, cache_dir=cache_dir)
    lst = str(write_list(tmp_path / "list.txt", WNIDS))
    return DataConfig(
        dataset=kind, root=str(root), class_list=lst, img_size=32, cache_dir=cache_dir
    )


def _ids(ds) -> list:
    """What identifies an image: its file (decoded datasets) or its bytes (arrays)."""
    if hasattr(ds, "samples"):
        return [s.path for s in ds.samples]
    return [bytes(ds.images[i].numpy().tobytes()) for i in range(len(ds))]


@pytest.mark.parametrize("kind", list(KINDS))
def test_tune_split_is_held_out_of_train_for_every_kind(tmp_path, kind, cifar_md5_unchecked):
    cfg = dataclasses.replace(_copy(kind, tmp_path), cache=False, augment="none")
    std = build_datasets(cfg)
    tune = build_datasets(dataclasses.replace(cfg, split="tune", tune_fraction=0.25))
    train, held, val = set(_ids(tune.train)), set(_ids(tune.val)), set(_ids(std.val))
    assert held and not held & train and not held & val
    assert train | held == set(_ids(std.train))  # the standard train set, split in two
    assert tune.info["split"] == "tune" and tune.info["val_source"] == "train"
    assert std.info["val_source"] == "val" and tune.info["val_labels"].startswith("held out")
    n = std.info["train_per_class"]
    assert tune.info["val_per_class"] == {c: max(1, round(0.25 * k)) for c, k in n.items()}
    again = build_datasets(dataclasses.replace(cfg, split="tune", tune_fraction=0.25))
    assert _ids(again.val) == _ids(tune.val)  # deterministic by data_seed


@pytest.mark.parametrize("kind", [k for k in list(KINDS) if k != "synthetic"])
def test_per_class_subsets_for_every_real_kind(tmp_path, kind, cifar_md5_unchecked):
    cfg = dataclasses.replace(_copy(kind, tmp_path), train_per_class=2, val_per_class=1)
    b = build_datasets(cfg)
    assert set(b.info["train_per_class"].values()) == {2}
    assert set(b.info["val_per_class"].values()) == {1}
    assert b.info["counts"] == {"train": 2 * b.num_classes, "val": b.num_classes}
    s = describe(cfg)
    assert (s.train_images, s.val_images) == (2 * b.num_classes, b.num_classes)


def test_imagefolder_subset_is_cached_and_depends_on_data_seed(tmp_path):
    cfg = dataclasses.replace(_copy("imagefolder", tmp_path), train_per_class=3)
    a, b = build_datasets(cfg), build_datasets(dataclasses.replace(cfg, data_seed=1))
    assert a.info["cache"]["key"] != b.info["cache"]["key"]  # different files, own cache
    raw = build_datasets(dataclasses.replace(cfg, cache=False))
    raw1 = build_datasets(dataclasses.replace(cfg, cache=False, data_seed=1))
    assert _ids(raw.train) != _ids(raw1.train)  # 20 ways to pick 3 of 6, in each class
    assert len(a.train) == len(raw.train) == 12


@pytest.mark.parametrize("cache", [True, False])
def test_provenance_has_the_same_keys_for_every_kind(tmp_path, cifar_md5_unchecked, cache):
    keys = {f.name for f in dataclasses.fields(DataProvenance)}
    keys |= {"counts", "num_skipped", "chance_top1", "class_to_idx", "val_missing_classes"}
    for kind in list(KINDS):
        cfg = dataclasses.replace(_copy(kind, tmp_path / kind), cache=cache)
        b = build_datasets(cfg)
        assert set(b.info) == keys, kind
        assert b.info["dataset"] == kind and b.info["class_names"] == b.class_names
        assert b.info["chance_top1"] == pytest.approx(100 / b.num_classes)
        assert b.info["counts"] == {"train": len(b.train), "val": len(b.val)}
        s = describe(cfg)
        assert (s.dataset, s.num_classes, s.class_names) == (kind, b.num_classes, b.class_names)
        assert (s.train_images, s.val_images) == (len(b.train), len(b.val))
        assert s.root == b.info["root"]


def test_describe_real_imagenet_mini_is_fast_and_builds_nothing(tmp_path):
    root = need_mini()
    cfg = DataConfig(dataset="imagenet100", root=str(root), cache_dir=str(tmp_path / "c"))
    t = time.perf_counter()
    s = describe(cfg)
    assert time.perf_counter() - t < 5  # a scan: ~0.05 s here (no decoding)
    assert (s.num_classes, s.train_images, s.val_images) == (100, 100, 142)
    assert not (tmp_path / "c").exists()


def test_describe_bad_root_is_one_line(tmp_path):
    from ablations.data import DataConfigError

    for kind in ("imagefolder", "imagenet100", "tiny_imagenet", "cifar10"):
        with pytest.raises(DataConfigError) as err:
            describe(DataConfig(dataset=kind, root=str(tmp_path / "nowhere")))
        assert "nowhere" in str(err.value) and "\n" not in str(err.value), kind
