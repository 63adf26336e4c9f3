"""Variants that train the same model at the protocol's depth are flagged (dry run, report)."""

from __future__ import annotations

import dataclasses
import json

import torch

from ablations.app.cli import main
from ablations.report import build_report
from ablations.schema.catalog import load_catalog
from ablations.schema.config import science
from ablations.schema.record import RunRecord, write_runs_csv
from ablations.train.steps import build_model


def _cfg(traversal: str, depth: int | None = None):
    cfg = load_catalog(None).protocol("smoke")
    model = dataclasses.replace(cfg.model, traversal=traversal, depth=depth)
    return dataclasses.replace(cfg, model=model)


def _logits(traversal: str, depth: int | None) -> torch.Tensor:
    torch.manual_seed(0)
    model = build_model(_cfg(traversal, depth), 4).eval()
    return model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))


def test_quad_alternating_is_alternating_at_depth_2_only():
    """The premise of the flag: equal blocks build the same model (nano has 2 blocks)."""
    assert torch.equal(_logits("alternating", None), _logits("quad_alternating", None))
    assert not torch.allclose(_logits("alternating", 4), _logits("quad_alternating", 4))


def test_dry_run_flags_the_duplicate_and_the_unused_directions(capsys):
    args = ["sweep", "table2", "--protocol", "smoke", "--dry-run", "--json"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "quad_alternating trains the same model as alternating at depth 2" in err
    assert "col, col_rev never run" in err
    assert "quad trains" not in err and "bi_shared trains" not in err  # real differences
    assert main([*args, "--set", "model.depth=4"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_report_warns_about_the_duplicate_row(tmp_path):
    exp_dir = tmp_path / "table2"
    variants = ["alternating", "quad_alternating", "bi"]
    meta = {"experiment": "table2", "axis": "traversal", "reference": "alternating",
            "variants": variants, "seeds": [0]}  # fmt: skip
    (exp_dir).mkdir()
    (exp_dir / "experiment.json").write_text(json.dumps(meta))
    records = []
    for v in variants:
        cfg = _cfg(v)
        rec = RunRecord(experiment="table2", variant=v, seed=0, traversal=v, state="COMPLETE",
                        top1=50.0, params=1, flops=1.0, dim=32, depth=2, science=science(cfg),
                        config={"model": {"traversal": v}}, run_dir=f"runs/{v}-s0")  # fmt: skip
        rec.write(exp_dir / rec.run_dir)
        records.append(rec)
    write_runs_csv(exp_dir / "runs.csv", records)
    page = build_report(exp_dir).read_text()
    top = page.split("## Results")[0]
    assert "quad_alternating trains the same model as alternating at depth 2" in top
    table = page.split("## Results")[1].split("## Difference")[0]
    assert "Warning: quad_alternating trains the same model" in table
    assert "bi trains" not in page
