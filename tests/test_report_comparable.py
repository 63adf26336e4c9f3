"""A report compares only runs trained alike: folders of run records made as a sweep makes
them (``Sweep.record_for`` + the resolved science config), trained differently on purpose."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from ablations.report import build_report
from ablations.report.comparable import pair_keys
from ablations.report.findings import NOT_COMPARABLE, findings
from ablations.report.load import load_experiment
from ablations.report.page import top_warnings
from ablations.report.tables import clear_best, diff_frame
from ablations.schema import record as runs
from ablations.schema.config import to_dict
from ablations.schema.points import Point
from ablations.sweep import SweepOptions, resolve
from ablations.sweep.spec import experiment_info

SEEDS = [0, 1, 2]
TOP1 = {"uni": [60.0, 61.5, 62.0], "alternating": [70.2, 71.0, 71.9], "bi": [69.1, 70.3, 70.6]}


def write_folder(root: Path, variants: dict[str, dict], top1=TOP1, exp="table2") -> Path:
    """One experiment folder; ``variants``: name -> that command's --set overrides."""
    exp_dir = None
    for variant, overrides in variants.items():
        opts = SweepOptions(exp, protocol="smoke", results=root, seeds=SEEDS,
                            variants=[variant], overrides=overrides)  # fmt: skip
        s = resolve(opts, check_data=False)
        exp_dir = s.exp_dir
        (exp_dir / "runs").mkdir(parents=True, exist_ok=True)
        info = experiment_info(s)
        (exp_dir / "experiment.json").write_text(json.dumps(info))
        for seed in SEEDS:
            p = Point(variant, seed)
            rec = s.record_for(p)
            rec.science = s.sciences[p]
            rec.update(dict(fingerprint=runs.fingerprint(rec.science), state="COMPLETE",
                            top1=top1[variant][seed], config=to_dict(s.configs[p]),
                            params=5.9e6, flops=1.1e9, epochs=2, num_classes=4))  # fmt: skip
            rec.write(exp_dir / p.run_dir)
    runs.write_runs_csv(exp_dir / "runs.csv", runs.read_all(exp_dir))
    return exp_dir


WD = {"train": {"weight_decay": 0.9}}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """The issue's folder: uni swept with train.weight_decay=0.9, alternating with the default."""
    exp_dir = write_folder(tmp_path_factory.mktemp("mixed"), {"uni": WD, "alternating": {}})
    build_report(exp_dir)
    return exp_dir


def test_mixed_weight_decay_warns_first_and_gives_no_interval(mixed):
    page = (mixed / "report.md").read_text()
    top = page.split("## Setting")[0]  # the lines above the Setting section
    want = "train.weight_decay: 0.9 (uni s0, s1, s2) vs 0.05 (alternating s0, s1, s2)"
    assert want in top and top.count("> **Warning:**") == 1  # the only key that differs
    diff = pd.read_csv(mixed / "table_diff.csv").set_index("variant")
    uni = diff.loc["uni"]
    assert uni["method"] == NOT_COMPARABLE and math.isnan(uni["ci_low"])
    assert math.isnan(uni["diff_top1"]) and "train.weight_decay" in uni["note"]
    md = (mixed / "table_diff.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| uni "))
    assert "not comparable" in row and "[" not in row  # no interval
    main = (mixed / "table_main.md").read_text()
    assert "**" not in main and "No bold:" in main  # alternating is not bold over uni
    found = pd.read_csv(mixed / "findings.csv")
    worst = found[found["claim"] == "uni-directional is clearly worst"].iloc[0]
    assert worst["verdict"] == NOT_COMPARABLE and worst["claim_verdict"] != "holds"
    # weight decay 0.9 is listed for the runs that used it, the others' value for theirs
    assert (
        "train.weight_decay: 0.9 (paper: 0.05) (uni-s0, uni-s1, uni-s2); 0.05 (alternating-s0, "
        "alternating-s1, alternating-s2; the paper's value)"
    ) in page


def test_alike_runs_compare_and_the_rows_own_settings_are_no_difference(tmp_path):
    """Control: both at the default; uni's own `pooling: last` differs by design."""
    exp = load_experiment(write_folder(tmp_path, {"uni": {}, "alternating": {}}))
    assert top_warnings(exp) == ""  # (the page's first lines: tested on `mixed` above)
    diff = diff_frame(exp).set_index("variant")
    assert diff.loc["uni", "method"] == "paired" and diff.loc["uni", "ci_high"] < 0
    uni = next(r for r in exp.records if r.variant == "uni")
    assert uni.science["model.pooling"] == "last" and "model.pooling" in uni.own_keys
    assert pair_keys(exp, "uni", "alternating") == []
    for r in exp.records:  # an older record does not say which keys are the row's own
        r.own_keys = None
    assert pair_keys(exp, "uni", "alternating") == ["model.pooling"]


def test_runs_of_one_variant_must_agree_and_tuned_keys_may_differ(tmp_path):
    exp_dir = write_folder(tmp_path, {"uni": {}, "alternating": {}, "bi": {}})
    uni1 = runs.read(exp_dir / "runs/uni-s1")
    uni1.science = {**uni1.science, "model.pooling": "avg"}  # uni's own key, changed for s1
    uni1.write(exp_dir / "runs/uni-s1")
    for v in ("alternating", "bi"):  # each row's own tune result: lr differs by design
        for seed in SEEDS:
            rec = runs.read(exp_dir / f"runs/{v}-s{seed}")
            lr = 0.004 if v == "bi" else 0.001
            rec.science, rec.tuned = {**rec.science, "train.lr": lr}, {"train.lr": lr}
            rec.write(exp_dir / f"runs/{v}-s{seed}")
    exp = load_experiment(exp_dir)
    assert pair_keys(exp, "alternating", "bi") == []
    assert pair_keys(exp, "uni", "alternating") == ["model.pooling", "train.lr"]
    want = "model.pooling: last (uni s0, s2) vs avg (uni s1) vs bilateral_avg (bi s0, s1, s2;"
    assert want in top_warnings(exp)
    diff = diff_frame(exp).set_index("variant")
    assert diff.loc["bi", "method"] == "paired" and diff.loc["uni", "method"] == NOT_COMPARABLE


def _in_memory(top1: dict[str, list[float]], axis: str = "traversal", ref: str = "alternating"):
    from ablations.report.load import Experiment, _complete_grid, _normalise

    rows = [{"variant": v, "seed": s, "state": "COMPLETE", "top1": x, "params": 5.9e6,
             "flops": 1.1e9} for v, xs in top1.items() for s, x in enumerate(xs)]  # fmt: skip
    meta = {"experiment": "t", "axis": axis, "reference": ref, "variants": list(top1),
            "seeds": SEEDS}  # fmt: skip
    return Experiment(Path("."), meta, _complete_grid(_normalise(pd.DataFrame(rows)), meta))


def test_bold_only_for_a_row_clear_of_every_other():
    clear = {"uni": [60.0, 61.0, 62.0], "bi": [70.9, 71.0, 71.2], "alternating": [71.4, 71.6, 71.7]}
    assert clear_best(_in_memory(clear)) == {"alternating"}
    close = dict(clear, bi=[70.9, 71.0, 72.5])  # highest mean still alternating; CI straddles
    assert sum(close["bi"]) < sum(close["alternating"])
    assert clear_best(_in_memory(close)) == set()
    one_seed = dict(clear, quad=[50.0])  # a row without an interval: nobody is clear of it
    assert clear_best(_in_memory(one_seed)) == set()
    assert clear_best(_in_memory({"alternating": [71.0, 72.0]})) == set()  # nothing to beat


def test_bold_never_across_runs_trained_differently(mixed):
    exp = load_experiment(mixed)
    by = {v: exp.top1_by_seed(v) for v in ("uni", "alternating")}
    assert min(by["alternating"].values()) - max(by["uni"].values()) > 8  # clearly apart...
    assert clear_best(exp) == set()  # ... but not trained alike


def test_findings_follow_the_axis():
    traversal = [f.claim for f in findings(_in_memory(TOP1))]
    assert "uni-directional is clearly worst" in traversal
    pooling = findings(_in_memory({"avg": [70.0, 70.1], "bilateral_avg": [70.2, 70.3]},
                                  axis="pooling", ref="bilateral_avg"))  # fmt: skip
    assert [f.claim for f in pooling] == ["all pooling variants land within about 0.6 points"]
    init = findings(_in_memory({"paper": [70.0, 70.5, 71.0], "fixed": [72.0, 72.4, 73.1]},
                               axis="model.init", ref="paper"))  # fmt: skip
    assert [f.claim for f in init] == ["fixed vs the reference paper (top-1)"]
    assert init[0].verdict == "higher" and "traversal" not in init[0].rule
