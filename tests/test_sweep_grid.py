"""A sweep never loses a grid point silently (issue 35): odd --seeds / --variants lists,
``report`` before any sweep, read-only results folders, and resuming a subset of the grid."""

from __future__ import annotations

import pytest

from ablations.app.cli import main

DRY = ["sweep", "table2", "--protocol", "smoke", "--dry-run", "--variants", "uni"]


@pytest.mark.parametrize(
    "seeds, says",
    [
        ("=-1,0,0", "'-1' is not one"),
        ("=0,1,0", "0 given twice"),
        ("=", "--seeds: empty"),
        ("=0,,1", "'' is not one"),
        ("=1.5", "'1.5' is not one"),
    ],  # fmt: skip
)
def test_seeds_are_distinct_non_negative_integers(capsys, tmp_path, seeds, says):
    assert main([*DRY, "--results", str(tmp_path), f"--seeds{seeds}"]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())


def test_variants_listed_twice_or_empty_are_refused(capsys, tmp_path):
    assert main([*DRY[:-1], "uni,bi,uni", "--results", str(tmp_path)]) == 2
    assert "--variants: uni given twice" in capsys.readouterr().err
    assert main([*DRY[:-1], "", "--results", str(tmp_path)]) == 2
    assert "--variants: expected comma-separated variant names" in capsys.readouterr().err


def test_seeds_with_spaces_still_work(capsys, tmp_path):
    assert main([*DRY, "--results", str(tmp_path), "--seeds", " 0, 3", "--json"]) == 0
    assert '"trial": "uni-s3"' in capsys.readouterr().out


def test_report_before_any_sweep_names_the_command_that_makes_one(capsys, tmp_path):
    where = ["table2", "--protocol", "smoke", "--results", str(tmp_path), "--seeds", "0,1"]
    assert main(["report", *where]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no sweep yet" in err, err
    assert f"vil-ablate sweep table2 --protocol smoke --results {tmp_path} --seeds 0,1" in err
