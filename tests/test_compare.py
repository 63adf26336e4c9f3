"""`vil-ablate compare A B`: one table of two experiment folders, paired where seeds match."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ablations.app.cli import main
from ablations.schema.record import RunRecord

A = {"alternating": [70.0, 71.0, 69.5], "bi": [72.0, 71.5, 73.0]}
B = {"alternating": [71.0, 72.5, 70.0], "bi": [74.0], "quad": [75.0, 76.0]}


def _folder(results, protocol: str, experiment: str, top1: dict[str, list[float]]):
    exp_dir = results / protocol / experiment
    for variant, values in top1.items():
        for seed, value in enumerate(values):
            rec = RunRecord(experiment=experiment, protocol=protocol, variant=variant, seed=seed,
                            state="COMPLETE", top1=value, params=5_900_000)  # fmt: skip
            rec.write(exp_dir / "runs" / f"{variant}-s{seed}")
    RunRecord(experiment=experiment, protocol=protocol, variant="alternating", seed=9,
              state="FAIL", top1=None).write(exp_dir / "runs" / "alternating-s9")  # fmt: skip
    return exp_dir


def test_compare_writes_one_table_with_paired_and_welch_intervals(tmp_path, capsys):
    a = _folder(tmp_path / "untuned", "demo", "table2", A)
    b = _folder(tmp_path / "tuned", "demo", "table2", B)
    stem = tmp_path / "out" / "cmp"
    assert main(["compare", str(a), str(b), "--out", str(stem)]) == 0
    out = capsys.readouterr().out
    assert "paired (3 seeds)" in out and str(a) in out and str(b) in out  # same labels: paths
    frame = pd.read_csv(stem.with_suffix(".csv")).set_index("variant")
    assert list(frame.index) == ["alternating", "bi", "quad"]
    d = np.subtract(B["alternating"], A["alternating"])  # paired: per-seed differences
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    alt = frame.loc["alternating"]
    assert alt["method"] == "paired" and alt["a_n"] == 3  # the failed seed is not counted
    assert alt["diff"] == pytest.approx(d.mean())
    assert alt["ci_low"] == pytest.approx(d.mean() - half)
    assert frame.loc["bi", "method"] == "welch" and math.isnan(frame.loc["bi", "ci_low"])
    assert frame.loc["bi", "diff"] == pytest.approx(74.0 - np.mean(A["bi"]))
    assert frame.loc["quad", "a_n"] == 0 and math.isnan(frame.loc["quad", "diff"])
    assert stem.with_suffix(".md").is_file() and stem.with_suffix(".tex").is_file()


def test_results_folders_with_experiment_and_bad_folders(tmp_path, capsys):
    _folder(tmp_path / "r", "demo", "table2", A)
    _folder(tmp_path / "r", "demo", "table2_iso_params", B)
    args = ["compare", str(tmp_path / "r"), str(tmp_path / "r" / "demo" / "table2_iso_params"),
            "--experiment", "table2"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "demo/table2_iso_params vs demo/table2" in out
    assert (
        len(list((tmp_path / "r" / "compare").glob("demo_table2-vs-demo_table2_iso_params-*.md")))
        == 1
    )
    assert main(["compare", str(tmp_path), str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--experiment NAME" in err
