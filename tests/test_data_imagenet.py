"""ImageNet-100 and image folders: class selection, layouts, counts, class mapping."""

from __future__ import annotations

import csv

import pytest
import torch

from ablations.data import DataConfig, DataConfigError, build_datasets
from ablations.data.imagenet100 import load_class_list

try:
    from data_fixtures import WNIDS, make_tree, need_mini, write_jpeg, write_list
except ImportError:  # tests/ imported as a package
    from tests.data_fixtures import WNIDS, make_tree, need_mini, write_jpeg, write_list


def _cfg(root, tmp_path, **kw) -> DataConfig:
    kw = {"dataset": "imagenet100", "root": str(root), "img_size": 32, **kw}
    return DataConfig(cache_dir=str(tmp_path / "cache"), **kw)


def test_shipped_class_lists():
    name, vil = load_class_list("vil")
    assert name == "vil" and len(vil) == 100 and vil[0] == "n01440764" and vil == sorted(vil)
    name, cmc = load_class_list("cmc")
    assert name == "cmc" and len(cmc) == 100 and len(set(cmc) & set(vil)) < 100


@pytest.mark.parametrize("class_list, n_val, n_val_classes", [("vil", 142, 78), ("cmc", 107, 67)])
@pytest.mark.parametrize("cache", [True, False])
def test_real_imagenet_mini(tmp_path, class_list, n_val, n_val_classes, cache):
    root = need_mini()
    b = build_datasets(_cfg(root, tmp_path, class_list=class_list, cache=cache, img_size=64))
    _, wnids = load_class_list(class_list)
    assert b.num_classes == 100 and b.class_names == wnids
    assert b.info["counts"] == {"train": 100, "val": n_val}
    assert b.info["class_to_idx"] == {w: i for i, w in enumerate(sorted(wnids))}
    assert len(b.info["val_missing_classes"]) == 100 - n_val_classes
    assert b.info["class_list"] == class_list and b.info["skipped"] == []
    assert sorted(b.train.targets) == list(range(100))
    assert len(set(b.val.targets)) == n_val_classes and len(b.val.targets) == n_val
    x, y = b.train[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and y == 0
    if cache:
        assert b.train.shape[2:] == (73, 73) and b.val.shape[2:] == (64, 64)


def test_real_imagenet_mini_every_val_image_decodes(tmp_path):
    root = need_mini()
    b = build_datasets(_cfg(root, tmp_path, cache=False, augment="none"))
    labels = [b.val[i][1] for i in range(len(b.val))]  # includes the real grayscale files
    assert len(labels) == 142 and b.val.skipped == []


def test_generated_tree_both_lists(tmp_path):
    for name in ("vil", "cmc"):
        _, wnids = load_class_list(name)
        make_tree(tmp_path / "in1k", wnids, n_train=1, n_val=1)
    for name in ("vil", "cmc"):
        b = build_datasets(_cfg(tmp_path / "in1k", tmp_path, class_list=name))
        assert b.info["counts"] == {"train": 100, "val": 100} and b.info["class_list"] == name
        assert b.info["class_to_idx"] == {w: i for i, w in enumerate(load_class_list(name)[1])}
        assert sorted(b.train.targets) == list(range(100))


def test_class_list_file_and_label_order(tmp_path):
    root = make_tree(tmp_path / "d", WNIDS + ["n09999999"])
    lst = write_list(tmp_path / "my.txt", [WNIDS[2], WNIDS[0], WNIDS[1]])
    b = build_datasets(_cfg(root, tmp_path, class_list=str(lst)))
    assert b.class_names == sorted(WNIDS[:3])  # sorted wnids -> 0..K-1, whatever the file order
    assert b.info["counts"] == {"train": 9, "val": 6} and b.info["class_list"] == str(lst)
    got = {(ds.targets[i]) for ds in (b.train,) for i in range(len(ds))}
    assert got == {0, 1, 2}


def test_extracted_folder_of_other_list_gets_a_hint(tmp_path):
    _, cmc = load_class_list("cmc")
    root = make_tree(tmp_path / "in100", cmc, n_train=1, n_val=0)
    with pytest.raises(DataConfigError) as err:
        build_datasets(_cfg(root, tmp_path, class_list="vil"))
    msg = str(err.value)
    assert "class folder missing" in msg and "data.class_list='cmc'" in msg and "\n" not in msg
    (root / "val" / cmc[5]).mkdir()
    (root / "train" / cmc[5] / f"{cmc[5]}_0.JPEG").rename(root / "val" / cmc[5] / "x.JPEG")
    write_jpeg(root / "train" / cmc[5] / "y.JPEG", 1)
    b = build_datasets(_cfg(root, tmp_path, class_list="cmc"))  # the extracted list itself
    assert b.info["counts"] == {"train": 100, "val": 1} and b.val.targets == [5]


def test_flat_val_with_kaggle_csv(tmp_path):
    root = make_tree(tmp_path / "kaggle" / "ILSVRC" / "Data" / "CLS-LOC", WNIDS, n_val=0)
    rows = []
    for i in range(10):
        stem = f"ILSVRC2012_val_{i + 1:08d}"
        write_jpeg(root / "val" / f"{stem}.JPEG", 100 + i)
        wnid = (WNIDS + ["n09999999"])[i % 5]
        rows.append({"ImageId": stem, "PredictionString": f"{wnid} 1 2 3 4 {wnid} 5 6 7 8"})
    with open(tmp_path / "kaggle" / "LOC_val_solution.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["ImageId", "PredictionString"])
        w.writeheader()
        w.writerows(rows)
    lst = write_list(tmp_path / "l.txt", WNIDS)
    b = build_datasets(_cfg(tmp_path / "kaggle", tmp_path, class_list=str(lst)))
    assert b.info["counts"]["val"] == 8 and b.info["val_labels"].endswith("LOC_val_solution.csv")
    assert sorted(b.val.targets) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_flat_val_with_devkit(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    import numpy as np

    root = make_tree(tmp_path / "r", WNIDS, n_val=0)
    for i in range(4):
        write_jpeg(root / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG", 200 + i)
    devkit = root / "ILSVRC2012_devkit_t12" / "data"
    devkit.mkdir(parents=True)
    # Devkit ids are not in sorted-wnid order: id 1 -> WNIDS[3], id 2 -> WNIDS[0], ...
    order = [WNIDS[3], WNIDS[0], WNIDS[2], WNIDS[1]]
    dt = [("ILSVRC2012_ID", "O"), ("WNID", "O")]
    synsets = np.array([(k + 1, w) for k, w in enumerate(order)], dtype=dt)
    scipy_io.savemat(devkit / "meta.mat", {"synsets": synsets})
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n2\n3\n4\n")
    lst = write_list(tmp_path / "l.txt", WNIDS)
    b = build_datasets(_cfg(root, tmp_path, class_list=str(lst)))
    assert b.val.targets == [3, 0, 2, 1]


def test_imagefolder_dataset(tmp_path):
    root = make_tree(tmp_path / "flowers", ["rose", "tulip", "daisy"], n_train=2, n_val=1)
    for cache in (True, False):
        cfg = DataConfig(
            dataset="imagefolder",
            root=str(root),
            img_size=32,
            cache=cache,
            cache_dir=str(tmp_path / "c"),
            augment="paper",
        )
        b = build_datasets(cfg)
        assert b.class_names == ["daisy", "rose", "tulip"] and b.num_classes == 3
        assert b.info["counts"] == {"train": 6, "val": 3}
        x, y = b.train[0]
        assert x.shape == (3, 32, 32) and y == 0
