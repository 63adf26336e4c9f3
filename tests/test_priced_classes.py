"""Dry runs price the head the run will train: classes from the data (counted, or what the
dataset kind declares), and data.num_classes is a deviation only for the synthetic task."""

from __future__ import annotations

import json

import vil
from ablations.app.cli import main
from ablations.data import DataConfig
from ablations.schema import points as grid
from ablations.schema.catalog import load_catalog
from ablations.schema.config import apply, to_dict
from ablations.schema.datasets import known_classes as declared_classes
from ablations.train.steps import build_model

try:
    from data_fixtures import make_tree
except ImportError:  # tests/ imported as a package
    from tests.data_fixtures import make_tree


def _rows(capsys, *args: str) -> list[dict]:
    assert main([*args, "--dry-run", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tune_and_sweep_dry_runs_price_the_folders_classes(tmp_path, capsys):
    root = make_tree(tmp_path / "folder", ["ant", "bee", "cat"], n_train=20, n_val=2)
    args = ["table2", "--protocol", "smoke", "--variants", "alternating", "--results",
            str(tmp_path / "r"), "--set", "data.dataset=imagefolder", "--set",
            f"data.root={root}"]  # fmt: skip
    cat = load_catalog()
    cfg = cat.experiment("table2").config_for(cat.protocol("smoke"), "alternating", 0)
    trained = vil.count_params(build_model(cfg, 3))  # the head of 3 classes
    for command in ("tune", "sweep"):
        (row,) = _rows(capsys, command, *args)
        assert row["num_classes"] == 3 and row["params"] == trained, (command, row)
    (tuned,) = _rows(capsys, "tune", *args)
    assert tuned["train_images"] == 54  # the tuning split: 10% of each class held out


def test_classes_without_files_come_from_the_registry():
    assert declared_classes(DataConfig(dataset="cifar10")) == 10
    assert declared_classes(DataConfig(dataset="tiny_imagenet")) == 200
    assert declared_classes(DataConfig(dataset="imagenet100", class_list="cmc")) == 100
    assert declared_classes(DataConfig(dataset="synthetic", num_classes=7)) == 7
    assert declared_classes(DataConfig(dataset="imagefolder")) is None  # count its folders


def test_dry_run_without_files_prices_the_kinds_classes(capsys):
    args = ["sweep", "table2", "--protocol", "cifar100", "--variants", "alternating", "--seeds",
            "0", "--set", "data.dataset=cifar10"]  # fmt: skip
    (row,) = _rows(capsys, *args)  # no data.root: nothing to count
    assert row["num_classes"] == 10


def test_num_classes_is_a_deviation_of_the_synthetic_task_only():
    cat = load_catalog()
    smoke, paper = to_dict(cat.protocol("smoke")), to_dict(cat.protocol("paper"))
    folder = to_dict(apply(cat.protocol("smoke"), {"data": {"dataset": "imagefolder"}}, "t"))

    def keys(cfg: dict) -> set[str]:
        devs = grid.deviations(cfg, paper, "model.traversal", {}, {})
        return {d.split(":")[0] for d in devs}

    assert "data.num_classes" in keys(smoke)  # 4 generated classes vs the paper's 100
    assert "data.num_classes" not in keys(folder) and "data.dataset" in keys(folder)
