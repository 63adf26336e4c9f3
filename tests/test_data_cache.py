"""The uint8 cache: built once, reused, rebuilt on change, never used when incomplete."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ablations.data import DataConfig, build_datasets, cache_build, prepare_cache
from ablations.data.cache import MARKER, read_index
from ablations.schema.config import RunConfig, apply, science, to_dict
from ablations.schema.record import fingerprint
from ablations.train.checkpoint import config_changes

try:
    from data_fixtures import WNIDS, make_tree, write_jpeg, write_list
except ImportError:  # tests/ imported as a package
    from tests.data_fixtures import WNIDS, make_tree, write_jpeg, write_list


@pytest.fixture
def tree(tmp_path) -> Path:
    return make_tree(tmp_path / "r", WNIDS, n_train=3, n_val=2)


def _cfg(tree: Path, cache_dir: Path, **kw) -> DataConfig:
    lst = write_list(tree.parent / "list.txt", WNIDS)
    kw = {"dataset": "imagenet100", "class_list": str(lst), "img_size": 32, **kw}
    return DataConfig(root=str(tree), cache_dir=str(cache_dir), **kw)


def _bytes(folder: Path) -> tuple[bytes, bytes]:
    return (folder / "train.u8").read_bytes(), (folder / "val.u8").read_bytes()


def test_built_once_then_reused(tree, tmp_path):
    cfg = _cfg(tree, tmp_path / "c")
    first = build_datasets(cfg).info["cache"]
    assert first["built_now"] is True
    folder = Path(first["path"])
    stamp = (folder / "train.u8").stat().st_mtime_ns
    second = build_datasets(cfg).info["cache"]
    assert second == {**first, "built_now": False}
    assert (folder / "train.u8").stat().st_mtime_ns == stamp
    assert prepare_cache(cfg, progress=False) == folder
    index = read_index(folder)
    assert index["splits"]["train"]["shape"] == [12, 3, 36, 36]  # 32 / 0.875 -> 36
    assert index["splits"]["val"]["shape"] == [8, 3, 32, 32]  # val: exact eval view
    assert (folder / "train.u8").stat().st_size == 12 * 3 * 36 * 36


def test_rebuilt_when_a_setting_or_a_file_changes(tree, tmp_path):
    cfg = _cfg(tree, tmp_path / "c")
    base = build_datasets(cfg).info["cache"]
    other = build_datasets(_cfg(tree, tmp_path / "c", img_size=48)).info["cache"]
    assert other["built_now"] and other["key"] != base["key"]
    f = tree / "train" / WNIDS[0] / f"{WNIDS[0]}_0.JPEG"
    write_jpeg(f, 999, (50, 40))
    os.utime(f, ns=(1, 1))  # a distinct mtime even on coarse file systems
    changed = build_datasets(cfg).info["cache"]
    assert changed["built_now"] and changed["key"] != base["key"]


def test_folder_without_marker_is_rebuilt(tree, tmp_path, caplog):
    cfg = _cfg(tree, tmp_path / "c")
    folder = prepare_cache(cfg, progress=False)
    good = _bytes(folder)
    (folder / MARKER).unlink()  # simulate a build that died before its last step
    (folder / "train.u8").write_bytes(b"\0" * 10)
    with caplog.at_level(logging.WARNING, logger="ablations.data"):
        info = build_datasets(cfg).info["cache"]
    assert info["built_now"] and (folder / MARKER).is_file()
    assert _bytes(folder) == good
    assert any("incomplete or stale" in r.message for r in caplog.records)


def test_truncated_data_file_is_not_used(tree, tmp_path):
    cfg = _cfg(tree, tmp_path / "c")
    folder = prepare_cache(cfg, progress=False)
    with open(folder / "val.u8", "r+b") as f:
        f.truncate(100)
    assert build_datasets(cfg).info["cache"]["built_now"]


def test_interrupted_build_resumes_to_the_same_bytes(tree, tmp_path, monkeypatch):
    fresh = _bytes(prepare_cache(_cfg(tree, tmp_path / "fresh"), progress=False))
    cfg = _cfg(tree, tmp_path / "c")
    real = cache_build.decode_all

    def dying(samples, side, workers):
        for n, item in enumerate(real(samples, side, workers)):
            if n == 7:
                raise KeyboardInterrupt  # the user pressed Ctrl-C mid-build
            yield item

    monkeypatch.setattr(cache_build, "CHECKPOINT_EVERY", 3)
    monkeypatch.setattr(cache_build, "decode_all", dying)
    with pytest.raises(KeyboardInterrupt):
        prepare_cache(cfg, progress=False)
    partial = [p for p in (tmp_path / "c").iterdir() if p.name.endswith(".partial")]
    assert len(partial) == 1 and not (partial[0] / MARKER).exists()
    assert not [p for p in (tmp_path / "c").iterdir() if p.is_dir() and p not in partial]
    monkeypatch.setattr(cache_build, "decode_all", real)
    resumed = []
    monkeypatch.setattr(cache_build, "_resume_state", _spy(cache_build._resume_state, resumed))
    folder = prepare_cache(cfg, progress=False)
    assert resumed == [True] and _bytes(folder) == fresh and not partial[0].exists()


def _spy(fn, calls):
    def wrapper(*args):
        out = fn(*args)
        calls.append(out is not None)
        return out

    return wrapper


def test_parallel_build_matches_serial(tree, tmp_path):
    serial = _bytes(prepare_cache(_cfg(tree, tmp_path / "a"), progress=False))
    parallel = _bytes(prepare_cache(_cfg(tree, tmp_path / "b", num_workers=2), progress=False))
    assert serial == parallel


def test_cached_view_matches_decoded_view(tree, tmp_path):
    cached = build_datasets(_cfg(tree, tmp_path / "c", augment="none"))
    raw = build_datasets(_cfg(tree, tmp_path / "c", augment="none", cache=False))
    for a, b in ((cached.val, raw.val), (cached.train, raw.train)):
        assert a.targets == b.targets
        x, y = a[3][0], b[3][0]
        assert x.shape == y.shape == (3, 32, 32)
        # Same region, different resampling paths: close, not bit-identical.
        assert float((x - y).abs().mean()) < 0.25


def test_the_cache_changes_pixels_so_it_is_in_the_fingerprint(tree, tmp_path):
    cached = build_datasets(_cfg(tree, tmp_path / "c", augment="none"))
    raw = build_datasets(_cfg(tree, tmp_path / "c", augment="none", cache=False))
    for a, b in ((cached.val, raw.val), (cached.train, raw.train)):  # no random draw at all
        assert all(not torch.equal(a[i][0], b[i][0]) for i in range(len(a)))
    on = RunConfig()
    off = apply(on, {"data": {"cache": False}}, "t")
    assert "data.cache" not in science(on)  # the default: fingerprints of earlier runs kept
    assert science(off)["data.cache"] is False
    assert fingerprint(science(on)) != fingerprint(science(off))
    assert "data.cache" in config_changes(to_dict(on), to_dict(off))  # no resume across it


def test_cached_dataset_pickles_without_its_memmap(tree, tmp_path):
    ds = build_datasets(_cfg(tree, tmp_path / "c")).train
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._mm is None
    torch.manual_seed(0)
    a = ds[1][0]
    torch.manual_seed(0)
    assert torch.equal(clone[1][0], a)
    assert isinstance(ds.array(), np.memmap)
