"""DataConfig validation: one-line errors naming the key, the value and the choices."""

from __future__ import annotations

import pytest

from ablations.data import KINDS, DataConfig, DataConfigError, build_datasets, prepare_cache
from ablations.data.cache import default_cache_dir
from ablations.schema.config import CHOICES, ConfigError, RunConfig, apply

try:
    from data_fixtures import make_tree
except ImportError:  # tests/ imported as a package
    from tests.data_fixtures import make_tree


def test_public_names():
    expected = ["synthetic", "imagenet100", "imagefolder", "tiny_imagenet", "cifar10", "cifar100"]
    assert list(KINDS) == list(KINDS) == expected
    assert CHOICES["data.dataset"]() == list(KINDS)  # the run config reads the same registry
    assert DataConfig().stored_size == 146  # 128 / 0.875, room for random crops
    assert DataConfig(img_size=32).stored_size == 36


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"dataset": "imagenet1k"}, ["data.dataset", "imagenet1k", "synthetic, imagenet100"]),
        ({"augment": "strong"}, ["data.augment", "strong", "paper, light, none"]),
        ({"dataset": "imagenet100"}, ["data.root", "required", "imagenet100"]),
        ({"dataset": "imagefolder", "root": ""}, ["data.root", "required"]),
        ({"img_size": 0}, ["data.img_size", ">= 8"]),
        ({"num_classes": 1}, ["data.num_classes"]),
        ({"mixup_prob": 0.8, "cutmix_prob": 0.5}, ["mixup_prob + data.cutmix_prob", "<= 1"]),
        ({"mixup_alpha": -1.0}, ["data.mixup_alpha"]),
        ({"num_workers": -2}, ["data.num_workers"]),
        ({"dataset": "cifar10"}, ["data.root", "required", "cifar-10-batches-py/"]),
        ({"dataset": "tiny_imagenet"}, ["data.root", "val/val_annotations.txt"]),
        ({"download": True}, ["data.download=True", "'synthetic'", "cifar10, cifar100"]),
        ({"dataset": "imagefolder", "root": "x", "train_per_class": 0}, ["train_per_class=0"]),
        ({"dataset": "imagefolder", "root": "x", "val_per_class": 2.5}, ["val_per_class=2.5"]),
        ({"train_per_class": 5}, ["train_per_class=5", "train_samples"]),
        ({"split": "test"}, ["data.split", "'test'", "standard, tune"]),
        ({"tune_fraction": 1.0}, ["data.tune_fraction=1.0", "(0, 1)"]),
        ({"tune_fraction": 0}, ["data.tune_fraction=0"]),
    ],
)
def test_bad_settings_raise_one_line(kwargs, words):
    with pytest.raises(DataConfigError) as err:
        build_datasets(DataConfig(**kwargs))
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_unknown_class_list(tmp_path):
    cfg = DataConfig(dataset="imagenet100", root=str(tmp_path), class_list="imagenet-100-x")
    with pytest.raises(DataConfigError, match="class_list='imagenet-100-x'.*vil.*cmc"):
        build_datasets(cfg)


def test_errors_are_value_errors():
    assert issubclass(DataConfigError, ValueError)


def test_synthetic_has_nothing_to_cache():
    with pytest.raises(DataConfigError, match="nothing to cache"):
        prepare_cache(DataConfig(dataset="synthetic"), progress=False)


def test_run_config_lists_the_registry_on_a_bad_name():
    with pytest.raises(ConfigError) as err:
        apply(RunConfig(), {"data": {"dataset": "cifar1000"}}, "--set")
    assert "cifar1000" in str(err.value) and ", ".join(list(KINDS)) in str(err.value)


def test_cache_goes_to_the_user_cache_never_the_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "vil-ablate"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "vil-ablate"


def test_default_cache_leaves_a_writable_dataset_folder_alone(tmp_path, monkeypatch):
    root = make_tree(tmp_path / "data", ["a", "b"], n_train=2, n_val=1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    info = build_datasets(DataConfig(dataset="imagefolder", root=str(root), img_size=32)).info
    assert info["cache"]["path"].startswith(str(tmp_path / "xdg" / "vil-ablate"))
    assert sorted(p.name for p in root.iterdir()) == ["train", "val"]
