"""Fingerprint changes are stated, not silent (issue 27 item 4): bumping the recipe version
(``config.RECIPE_VERSION``, in every fingerprint) makes finished runs stale with a one-line
reason in ``sweep`` and ``status``, and the report never pairs runs of two versions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ablations.app.cli import main
from ablations.schema import config
from ablations.schema.catalog import PACKAGE_FILE

OLD = config.RECIPE_VERSION
NEW = OLD + 1
REASON = f"recorded recipe.version {OLD}, this code {NEW} (the code now trains such a run"


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[list[str], Path]:
    """alternating and bi x seeds 0, 1 on the smoke protocol, at today's recipe version."""
    tmp = tmp_path_factory.mktemp("recipe")
    spec = yaml.safe_load(PACKAGE_FILE.read_text())
    spec["experiments"] = {"rv": {"axis": "traversal", "reference": "alternating",
                                  "seeds": [0, 1], "variants": ["alternating", "bi"]}}  # fmt: skip
    path = tmp / "experiments.yaml"
    path.write_text(yaml.safe_dump(spec))
    where = ["rv", "--experiments", str(path), "--protocol", "smoke", "--results",
             str(tmp / "r"), "--set", "data.train_samples=64"]  # fmt: skip
    assert main(["sweep", *where, "--plain", "--no-report"]) == 0
    return where, tmp / "r" / "smoke" / "rv"


def _finished(exp: Path) -> dict[str, str]:
    return {p.name: json.loads((p / "result.json").read_text())["finished_at"]
            for p in sorted((exp / "runs").iterdir())}  # fmt: skip


def test_a_bumped_recipe_version_makes_finished_runs_stale(swept, monkeypatch, capsys):
    where, exp = swept
    before = _finished(exp)
    capsys.readouterr()
    monkeypatch.setattr(config, "RECIPE_VERSION", NEW)
    assert main(["sweep", *where, "--plain", "--no-report"]) == 1
    err = capsys.readouterr().err
    lines = [line.strip() for line in err.splitlines() if REASON in line]
    assert lines and lines[0].startswith("alternating-s0 (complete): " + REASON), err
    assert {line.split(" ")[0] for line in lines} == set(before)  # each run, one line each
    assert "--rerun" in err and _finished(exp) == before  # nothing was retrained
    assert main(["status", *where]) == 0
    out = capsys.readouterr().out
    stale = [line for line in out.splitlines() if line.startswith("stale: ")]
    assert len(stale) == 4 and all(REASON in line for line in stale), out
    monkeypatch.setattr(config, "RECIPE_VERSION", OLD)  # the code the runs were made with
    assert main(["status", *where]) == 0
    assert "stale:" not in capsys.readouterr().out


def test_the_report_never_pairs_runs_of_two_recipe_versions(swept, monkeypatch, capsys):
    where, exp = swept
    monkeypatch.setattr(config, "RECIPE_VERSION", NEW)
    assert main(["sweep", *where, "--variants", "bi", "--rerun", "--plain", "--no-report"]) == 0
    sciences = {p.name: json.loads((p / "result.json").read_text())["science"]
                for p in (exp / "runs").iterdir()}  # fmt: skip
    assert {n: s["recipe.version"] for n, s in sciences.items()} == {
        "alternating-s0": OLD, "alternating-s1": OLD, "bi-s0": NEW, "bi-s1": NEW}  # fmt: skip
    assert main(["report", *where]) == 0
    diff = pd.read_csv(exp / "table_diff.csv").set_index("variant")
    assert diff.loc["bi", "method"] == "not comparable" and pd.isna(diff.loc["bi", "ci_low"])
    assert f"runs of different recipe versions ({OLD} vs {NEW}" in diff.loc["bi", "note"]
    top = (exp / "report.md").read_text().split("## Setting")[0]
    assert f"recipe.version: {OLD} (alternating s0, s1) vs {NEW} (bi s0, s1)" in top
