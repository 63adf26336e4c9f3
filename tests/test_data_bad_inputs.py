"""Bad input: clear one-line errors for broken datasets, counted skips for single bad files."""

from __future__ import annotations

import logging

import pytest
import torch

from ablations.data import BadImageError, DataConfig, DataConfigError, build_datasets

try:
    from data_fixtures import WNIDS, bad_files, make_tree, odd_but_good_files, write_list
except ImportError:  # tests/ imported as a package
    from tests.data_fixtures import WNIDS, bad_files, make_tree, odd_but_good_files, write_list


def _cfg(root, tmp_path, **kw) -> DataConfig:
    lst = write_list(tmp_path / "list.txt", WNIDS)
    kw = {"dataset": "imagenet100", "class_list": str(lst), "img_size": 32, **kw}
    return DataConfig(root=str(root), cache_dir=str(tmp_path / "cache"), **kw)


def _one_line(err: pytest.ExceptionInfo, *words: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("cache", [True, False])
def test_odd_but_valid_files_decode(tmp_path, cache):
    root = make_tree(tmp_path / "r", WNIDS)
    good = odd_but_good_files(root / "train" / WNIDS[1])
    b = build_datasets(_cfg(root, tmp_path, cache=cache, augment="none"))
    assert b.info["skipped"] == [] and len(b.train) == 12 + len(good)
    for i in range(len(b.train)):
        x, _ = b.train[i]
        assert x.shape == (3, 32, 32) and torch.isfinite(x).all()
    assert b.info["runtime_skipped"]["train"] == [] if not cache else True


def test_bad_files_skipped_and_recorded_with_cache(tmp_path, caplog):
    root = make_tree(tmp_path / "r", WNIDS)
    bad = bad_files(root / "train" / WNIDS[0])
    with caplog.at_level(logging.WARNING, logger="ablations.data"):
        b = build_datasets(_cfg(root, tmp_path))
    assert len(b.train) == 12 and b.info["num_skipped"] == 4
    reasons = {s["path"]: s["reason"] for s in b.info["skipped"]}
    assert set(reasons) == {str(p) for p in bad.values()}
    assert "0 bytes" in reasons[str(bad["zero"])]
    assert "not an image" in reasons[str(bad["text"])]
    assert "cannot decode" in reasons[str(bad["truncated"])]
    assert "cannot decode" in reasons[str(bad["random"])]
    assert sum("skipping" in r.message for r in caplog.records) >= 4
    for i in range(len(b.train)):
        b.train[i]


def test_bad_files_without_cache_never_crash_an_epoch(tmp_path):
    root = make_tree(tmp_path / "r", WNIDS)
    bad = bad_files(root / "train" / WNIDS[0])
    b = build_datasets(_cfg(root, tmp_path, cache=False))
    assert b.info["num_skipped"] == 2  # zero-byte and .txt are caught by the scan
    loader = torch.utils.data.DataLoader(b.train, batch_size=4)
    n = sum(len(y) for _, y in loader)  # a whole epoch: bad images replaced, not raised
    assert n == len(b.train) == 14
    runtime = {s["path"] for s in b.info["runtime_skipped"]["train"]}
    assert runtime == {str(bad["truncated"]), str(bad["random"])}


@pytest.mark.parametrize("cache", [True, False])
def test_strict_makes_bad_files_errors(tmp_path, cache):
    root = make_tree(tmp_path / "r", WNIDS)
    (root / "train" / WNIDS[0] / "bad.JPEG").write_bytes(b"\xff\xd8garbage" * 10)
    cfg = _cfg(root, tmp_path, cache=cache, strict=True)
    with pytest.raises(BadImageError) as err:
        b = build_datasets(cfg)
        for i in range(len(b.train)):
            b.train[i]
    _one_line(err, "bad.JPEG", "strict")


def test_strict_scan_errors(tmp_path):
    root = make_tree(tmp_path / "r", WNIDS)
    (root / "train" / WNIDS[2] / "empty.JPEG").write_bytes(b"")
    with pytest.raises(BadImageError) as err:
        build_datasets(_cfg(root, tmp_path, strict=True))
    _one_line(err, "empty.JPEG", "0 bytes")


def test_missing_class_of_the_list(tmp_path):
    root = make_tree(tmp_path / "r", WNIDS[:3])
    with pytest.raises(DataConfigError) as err:
        build_datasets(_cfg(root, tmp_path))
    _one_line(err, str(root / "train" / WNIDS[3]), "class folder missing")


def test_empty_class_folder(tmp_path):
    root = make_tree(tmp_path / "r", WNIDS[:3])
    (root / "train" / WNIDS[3]).mkdir()
    (root / "train" / WNIDS[3] / "notes.txt").write_text("x")
    with pytest.raises(DataConfigError) as err:
        build_datasets(_cfg(root, tmp_path))
    _one_line(err, str(root / "train" / WNIDS[3]), "no images")


def test_wrong_root(tmp_path):
    with pytest.raises(DataConfigError) as err:
        build_datasets(_cfg(tmp_path / "nowhere", tmp_path))
    _one_line(err, "nowhere", "no such folder")
    (tmp_path / "notimagenet").mkdir()
    with pytest.raises(DataConfigError) as err:
        build_datasets(_cfg(tmp_path / "notimagenet", tmp_path))
    _one_line(err, "notimagenet", "no train/ folder")


def test_missing_val_and_flat_val_without_labels(tmp_path):
    root = make_tree(tmp_path / "r", WNIDS, n_val=0)
    (root / "val").rmdir()
    with pytest.raises(DataConfigError) as err:
        build_datasets(_cfg(root, tmp_path))
    _one_line(err, str(root / "val"), "missing")
    (root / "val").mkdir()
    (root / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"x")
    with pytest.raises(DataConfigError) as err:
        build_datasets(_cfg(root, tmp_path))
    _one_line(err, "without labels", "LOC_val_solution.csv")


def test_bad_class_list_file(tmp_path):
    root = make_tree(tmp_path / "r", WNIDS)
    (tmp_path / "bad.txt").write_text("n01440764\nfoo\n")
    with pytest.raises(DataConfigError) as err:
        build_datasets(_cfg(root, tmp_path, class_list=str(tmp_path / "bad.txt")))
    _one_line(err, "bad.txt", "'foo' is not a wnid")


def test_imagefolder_errors(tmp_path):
    root = make_tree(tmp_path / "f", ["a", "b"])
    make_tree(tmp_path / "f2", ["c"], n_train=0)
    (root / "val" / "zebra").mkdir()
    cfg = DataConfig(dataset="imagefolder", root=str(root), cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataConfigError) as err:
        build_datasets(cfg)
    _one_line(err, "zebra", "not in")
    cfg.root = str(tmp_path / "missing")
    with pytest.raises(DataConfigError) as err:
        build_datasets(cfg)
    _one_line(err, "missing", "no such folder")
