"""``calibrate``'s bad input, the binomial interval, and what ``sweep --dry-run`` says about
seeds with and without a measured spread (a calibration.json of the same protocol and
dataset). The trained calibration itself: tests/test_calibrate_e2e.py (slow)."""

from __future__ import annotations

import json
import math

import pytest
from scipy import stats

from ablations.app.cli import main
from ablations.app.cli_args import _seeds
from ablations.report.calibration import clopper_pearson
from ablations.report.calibration_out import dataset_keys
from ablations.report.power import min_resolvable_difference, seeds_needed
from ablations.schema.errors import ConfigError
from ablations.sweep import SweepOptions, resolve

DRY = ["sweep", "table2", "--protocol", "smoke", "--variants", "uni,bi", "--seeds", "0-2",
       "--dry-run"]  # fmt: skip


@pytest.mark.parametrize(("x", "k"), [(0, 6), (3, 6), (6, 6), (19, 20), (1, 4)])
def test_clopper_pearson_is_scipys_exact_interval(x, k):
    ci = stats.binomtest(x, k).proportion_ci(0.95, method="exact")
    assert clopper_pearson(x / k, k) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert all(math.isnan(v) for v in clopper_pearson(0.5, 0))


def test_seed_ranges():
    assert _seeds("0-2,5") == [0, 1, 2, 5] and _seeds("0-19") == list(range(20))
    with pytest.raises(ConfigError, match="'3-1' is not one"):
        _seeds("3-1")
    with pytest.raises(ConfigError, match="1 given twice"):
        _seeds("0-2,1")


@pytest.mark.parametrize(
    ("planted", "says"),
    [
        ("data.label_noise=1.5", "data.label_noise=1.5 must be a number in [0, 1)"),
        ("model.bogus=1", "model.bogus: unknown key"),
        ("label_noise", "--planted: 'label_noise': expected KEY.PATH=VALUE"),
    ],
)
def test_bad_planted_one_line_exit_2_nothing_written(capsys, tmp_path, planted, says):
    args = ["calibrate", "--protocol", "smoke", "--seeds", "0-2", "--results", str(tmp_path)]
    assert main([*args, "--planted", planted]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())


def test_calibrate_dry_run_lists_three_arms_seed_by_seed(capsys, tmp_path):
    assert main(["calibrate", "--protocol", "smoke", "--seeds", "0-1", "--results",
                 str(tmp_path), "--dry-run", "--json"]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert [r["trial"] for r in rows] == ["reference-s0", "aa-s0", "planted-s0",
                                          "reference-s1", "aa-s1", "planted-s1"]  # fmt: skip
    assert not any(tmp_path.iterdir())


def _calibration(results, dataset, sd=0.8, seeds=20):
    folder = results / "smoke" / "calibration"
    folder.mkdir(parents=True)
    data = {"dataset": dataset, "seeds": list(range(seeds)), "spread": {"paired_sd": sd}}
    (folder / "calibration.json").write_text(json.dumps(data))
    return folder


def _smoke_dataset():
    s = resolve(SweepOptions("table2", "smoke", seeds=[0]), check_data=False)
    return dataset_keys(next(iter(s.sciences.values())))


def test_dry_run_without_a_spread_names_the_command(capsys, tmp_path):
    assert main([*DRY, "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    want = (f"seeds: no measured spread for protocol smoke and this dataset in {tmp_path} "
            "(no finished calibration or earlier sweep); get one with: vil-ablate calibrate "
            f"--protocol smoke --results {tmp_path} --seeds 0-19")  # fmt: skip
    assert want in out


def test_dry_run_states_what_the_seeds_resolve(capsys, tmp_path):
    folder = _calibration(tmp_path, _smoke_dataset(), sd=0.8)
    assert main([*DRY, "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    res, need = min_resolvable_difference(0.8, 3, paired=True), seeds_needed(0.8)
    assert (f"seeds: 3 paired seed(s) per variant resolve {res:.2f} pp at 80% power; 0.6 pp "
            f"needs {need} seeds (spread 0.800 pp, sd of the A/A differences of the "
            f"calibration in {folder}, 20 seeds)") in out  # fmt: skip


def test_dry_run_ignores_a_calibration_of_another_dataset(capsys, tmp_path):
    other = {**_smoke_dataset(), "data.num_classes": 99}
    _calibration(tmp_path, other)
    assert main([*DRY, "--results", str(tmp_path)]) == 0
    assert "seeds: no measured spread for protocol smoke" in capsys.readouterr().out
