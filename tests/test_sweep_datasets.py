"""A smoke sweep completes on each real dataset kind (small copies in their real formats).

In-process (``ablations.app.cli.main``) so the CIFAR md5 check can be patched for our copies.
"""

from __future__ import annotations

import csv
import json

import pytest

from ablations.app.cli import main

try:
    from data_fixtures import (
        cifar_md5_unchecked,  # noqa: F401  (fixture)
        make_tiny_imagenet,
        make_tree,
        write_cifar,
    )
except ImportError:  # tests/ imported as a package
    from tests.data_fixtures import (  # noqa: F401
        cifar_md5_unchecked,
        make_tiny_imagenet,
        make_tree,
        write_cifar,
    )


def _copy(kind: str, tmp_path) -> list[str]:
    """--set items pointing the smoke protocol at a small copy (>= one batch of 32)."""
    if kind == "cifar10":
        root, extra = write_cifar(tmp_path / "cifar", "cifar10", per_class=4), []
    elif kind == "tiny_imagenet":
        root, extra = make_tiny_imagenet(tmp_path / "tiny", n_train=12, n_val=2), []
    else:  # an image folder with subsets: 8 of 12 train and 1 of 2 val images a class
        root = make_tree(tmp_path / "folder", ["a", "b", "c", "d"], n_train=12, n_val=2)
        extra = ["data.train_per_class=8", "data.val_per_class=1"]
    items = [f"data.dataset={kind}", f"data.root={root}", f"data.cache_dir={tmp_path / 'c'}"]
    return [x for item in items + extra for x in ("--set", item)]


EXPECTED = {  # classes and split sizes of the copies above
    "cifar10": (10, {"train": 40, "val": 20}),
    "tiny_imagenet": (3, {"train": 36, "val": 6}),
    "imagefolder": (4, {"train": 32, "val": 4}),
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_smoke_sweep_on_each_dataset_kind(tmp_path, kind, cifar_md5_unchecked):
    results = tmp_path / "results"
    args = ["sweep", "table2", "--protocol", "smoke", "--variants", "alternating"]
    args += [*_copy(kind, tmp_path), "--results", str(results), "--no-report", "--plain"]
    assert main(args) == 0
    exp = results / "smoke" / "table2"
    rows = list(csv.DictReader(open(exp / "runs.csv")))
    assert [r["state"] for r in rows] == ["COMPLETE"]
    (result,) = exp.glob("runs/*/result.json")
    record = json.loads(result.read_text())
    assert record["state"] == "COMPLETE" and record["dataset"] == kind
    info = record["data"]  # the provenance: dataset, split sizes and classes
    k, counts = EXPECTED[kind]
    assert record["num_classes"] == k and len(info["class_names"]) == k
    assert (record["train_images"], record["val_images"]) == (counts["train"], counts["val"])
    assert info["counts"] == counts and info["chance_top1"] == pytest.approx(100 / k)
