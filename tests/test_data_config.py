"""DataConfig validation: one-line errors naming the key, the value and the choices."""

from __future__ import annotations

import pytest

from ablations.data import DATASETS, DataConfig, DataConfigError, build_datasets, prepare_cache


def test_public_names():
    assert DATASETS == ["synthetic", "imagenet100", "imagefolder"]
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
