"""Matched rows: solved depths/widths bring params or FLOPs within 2% of the reference's."""

from __future__ import annotations

import csv

import pytest

from ablations.schema.catalog import load_catalog
from ablations.schema.config import ConfigError, RunConfig, apply
from ablations.sweep import SweepOptions, resolve
from ablations.sweep.matching import closest, measure, solve


def _tiny(traversal: str) -> RunConfig:
    """ViL-T at 128 px (the paper's ablation setting), targets computed from the model."""
    return apply(RunConfig(), {"model": {"traversal": traversal}, "data": {"img_size": 128}}, "t")


def test_closest_finds_the_nearest_multiple_of_the_step():
    assert closest(lambda v: 10.0 * v, 243.0, 1, 5) == 24
    assert closest(lambda v: 10.0 * v, 247.0, 1, 50) == 25
    assert closest(lambda v: float(v * v), 1000.0, 8, 192) == 32
    assert closest(lambda v: float(v * v), 1000.0, 8, 8) == 32  # from below
    assert closest(lambda v: 10.0 * v, 5.0, 1, 30) == 1  # never below one step


@pytest.mark.parametrize(("by", "key", "step"), [("params", "model.depth", 1),
                                                  ("flops", "model.dim", 8)])  # fmt: skip
def test_matched_variants_are_within_two_percent_of_the_reference(by, key, step):
    target = measure(_tiny("alternating"), by)
    for traversal in ("bi", "quad"):
        s = solve(_tiny(traversal), target, by, key, step)
        assert abs(s.error) <= 0.02, (traversal, s)
        assert s.figure == measure(
            apply(_tiny(traversal), {key.split(".")[0]: {key.split(".")[1]: s.value}}, "t"), by
        )
        assert s.value != (24 if key == "model.depth" else 192)  # it really was solved


def test_iso_experiments_put_the_solved_value_into_config_and_record():
    s = resolve(
        SweepOptions("table2_iso_flops", protocol="smoke", variants=["alternating", "quad"])
    )
    quad = next(p for p in s.grid if p.variant == "quad")
    solved = s.matched["quad"]
    assert s.config_for(quad).model.dim == solved.value
    rec = s.record_for(quad)
    assert rec.match == "flops" and rec.match_target == measure(
        s.variant_config("alternating", 0), "flops"
    )
    assert rec.match_value == solved.value
    assert s.matched["alternating"].figure == s.matched["alternating"].target
    assert "model.dim" in s.sciences[quad] and s.sciences[quad]["model.dim"] == solved.value


def test_bad_match_option_is_one_line(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(
        "default_protocol: p\nprotocols: {p: {}}\n"
        "experiments: {x: {axis: traversal, variants: [bi], match: volume}}\n"
    )
    with pytest.raises(
        ConfigError, match=r"experiments.x.match: unknown 'volume'; valid: params, flops"
    ):
        load_catalog(path)
    assert load_catalog().experiment("table2_iso_params").match.by == "params"


def test_matched_sweep_report_shows_the_solved_depth_and_the_matched_figure(tmp_path):
    from tests.postgres import run_cli

    args = ["--protocol", "smoke", "--plain", "--set", "train.epochs=1"]
    variants = ["--variants", "alternating,quad"]
    done = run_cli("sweep", "table2_iso_params", *variants, *args, "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    exp_dir = tmp_path / "smoke" / "table2_iso_params"
    table = {r["variant"]: r for r in csv.DictReader(open(exp_dir / "table_main.csv"))}
    s = resolve(
        SweepOptions("table2_iso_params", protocol="smoke", variants=["alternating", "quad"])
    )
    assert int(float(table["quad"]["solved"])) == s.matched["quad"].value
    assert float(table["quad"]["match_diff_pct"]) == pytest.approx(100 * s.matched["quad"].error)
    assert "Solved depth/width" in (exp_dir / "report.md").read_text()
