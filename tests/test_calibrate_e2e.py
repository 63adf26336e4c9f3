"""A reduced calibration (6 seeds x 3 arms on the smoke protocol, seconds a run): the real
command, sweep and records. It fails when the pairing is broken (init_seed ignored, or the
data draws moved with it: the records' digests) or when the interval is (a z-quantile in
place of the t-quantile: the half-width over the standard error is checked against scipy)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from ablations.app.cli import main
from ablations.schema.record import read_all

pytestmark = pytest.mark.slow
SEEDS = 6


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    results = tmp_path_factory.mktemp("calibrate")
    code = main(["calibrate", "--protocol", "smoke", "--seeds", f"0-{SEEDS - 1}", "--results",
                 str(results), "--plain", "--set", "train.epochs=1"])  # fmt: skip
    folder = results / "smoke" / "calibration"
    return code, folder, results


def _top1(folder) -> dict[tuple[str, int], float]:
    return {r.point: r.top1 for r in read_all(folder) if r.state == "COMPLETE"}


def test_pairing_verified_from_the_records(calibrated):
    code, folder, _ = calibrated
    data = json.loads((folder / "calibration.json").read_text())
    assert code == 0, data["pairing"]
    assert data["pairing"] == {"checked": SEEDS, "ok": True, "problems": []}
    recs = {r.point: r for r in read_all(folder)}
    for s in range(SEEDS):
        ref, aa, pl = (recs[(v, s)] for v in ("reference", "aa", "planted"))
        assert ref.data_digest == aa.data_digest == pl.data_digest
        assert aa.init_digest != ref.init_digest == pl.init_digest
        assert aa.config["model"]["init_seed"] == s + 1_000_003
    top1 = _top1(folder)
    assert any(top1[("aa", s)] != top1[("reference", s)] for s in range(SEEDS))


def test_interval_is_the_t_interval(calibrated):
    _, folder, _ = calibrated
    data = json.loads((folder / "calibration.json").read_text())
    top1 = _top1(folder)
    d = np.array([top1[("aa", s)] - top1[("reference", s)] for s in range(SEEDS)])
    aa = data["aa"]
    assert aa["n"] == SEEDS and aa["diff"] == pytest.approx(d.mean())
    assert aa["sample_sd"] == pytest.approx(d.std(ddof=1))
    assert aa["sd_used"] >= aa["sample_sd"] - 1e-9  # the evaluation-noise floor only widens
    se = aa["sd_used"] / math.sqrt(SEEDS)
    assert aa["half_width"] / se == pytest.approx(stats.t.ppf(0.975, SEEDS - 1), rel=1e-6)
    if not aa["floored"]:  # the seeds' spread set it: scipy's own interval
        low, high = stats.t.interval(0.95, SEEDS - 1, loc=d.mean(), scale=stats.sem(d))
        assert (aa["low"], aa["high"]) == (pytest.approx(low), pytest.approx(high))


def test_rates_tables_figure_and_dry_run(calibrated, capsys):
    _, folder, results = calibrated
    data = json.loads((folder / "calibration.json").read_text())
    kinds = {(r["kind"], r["method"], r["n"]) for r in data["rates"]}
    per_n = {("coverage", "paired"), ("claim", "alone"), ("claim", "holm"),
             ("detection", "paired")}  # fmt: skip
    # Welch's needs 2n other seeds: 3 + 3 of the 6, never 5 + 5
    assert kinds == {(*k, n) for k in per_n for n in (3, 5)} | {("coverage", "welch", 3)}
    paired = next(r for r in data["rates"] if r["method"] == "paired" and r["kind"] == "coverage")
    assert paired["k"] == 2 and paired["draws"] == math.comb(SEEDS, 3)  # every subset
    assert 0 <= paired["low"] <= paired["rate"] <= paired["high"] <= 1
    for name in ("calibration.md", "calibration.csv", "calibration.png"):
        assert (folder / name).stat().st_size > 0
    assert main(["sweep", "table2", "--protocol", "smoke", "--seeds", "0,1,2", "--variants",
                 "uni", "--results", str(results), "--dry-run", "--set",
                 "train.epochs=1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    res = data["spread"]["resolvable"]["3"]
    assert f"seeds: 3 paired seed(s) per variant resolve {res:.2f} pp at 80% power" in out
    assert f"of the calibration in {folder}, {SEEDS} seeds" in out


def test_resumes_without_training(calibrated, capsys):
    _, folder, results = calibrated
    before = {r.point: r.finished_at for r in read_all(folder)}
    assert main(["calibrate", "--protocol", "smoke", "--seeds", f"0-{SEEDS - 1}", "--results",
                 str(results), "--plain", "--set", "train.epochs=1"]) == 0  # fmt: skip
    assert {r.point: r.finished_at for r in read_all(folder)} == before
    assert "paired seeds: 6" in capsys.readouterr().out
