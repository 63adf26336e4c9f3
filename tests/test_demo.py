"""The demo protocol learns: the demo model reaches >= 10x chance within the demo's budget."""

from __future__ import annotations

import pytest

from ablations.schema.catalog import load_catalog
from ablations.train import train


@pytest.mark.slow
def test_demo_model_reaches_ten_times_chance(tmp_path):
    cat = load_catalog()
    cfg = cat.experiment("table2").config_for(cat.protocol("demo"), "alternating", 0)
    result = train(cfg, tmp_path / "run").to_dict()
    chance = 100.0 / cfg.data.num_classes  # top-1 is in percent
    assert chance <= 10.0, "10x chance needs at least 10 classes"
    assert result["top1"] >= 10 * chance, result["top1"]
