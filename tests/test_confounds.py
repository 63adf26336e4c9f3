"""A variant's own training setting is a confound (issue 27 item 1): through the real sweep on
the smoke protocol, ``{name: bi, set: {train.epochs: 4}}`` and ``{name: bi_shared, set:
{train.lr: 0.5}}`` are "not comparable" unless the experiment declares them in ``confounds:``;
the declaration is validated on load and reaches every run's record."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ablations.app.cli import main
from ablations.schema.catalog import PACKAGE_FILE, load_catalog
from ablations.schema.config import ConfigError

WHY = "bi_shared diverges at the reference's lr"
VARIANTS = ["alternating", {"name": "bi", "set": {"train.epochs": 4}},
            {"name": "bi_shared", "set": {"train.lr": 0.5}}]  # fmt: skip
# the smoke protocol on half its images: two steps an epoch, every trial well under a second
SMALL = ["--set", "data.train_samples=64", "--set", "data.val_samples=64"]


def _file(tmp_path: Path, experiments: dict) -> Path:
    spec = yaml.safe_load(PACKAGE_FILE.read_text())
    spec["experiments"] = experiments
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _exp(variants: list, confounds: dict | None = None) -> dict:
    out = {"axis": "traversal", "reference": "alternating", "seeds": [0, 1], "variants": variants}
    return out | ({"confounds": confounds} if confounds is not None else {})


def _sweep(path: Path, results: Path, exp: str) -> Path:
    args = ["sweep", exp, "--experiments", str(path), "--protocol", "smoke", "--results",
            str(results), "--plain", *SMALL]  # fmt: skip
    assert main(args) == 0
    return results / "smoke" / exp


def _diff_rows(exp_dir: Path) -> dict[str, str]:
    md = (exp_dir / "table_diff.md").read_text().splitlines()
    return {line.split("|")[1].strip(): line for line in md if line.startswith("| bi")}


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> dict[str, Path]:
    """``own``: the issue's two variants, nothing declared; ``declared``: bi_shared's lr
    declared (5 + 4 smoke trials)."""
    tmp = tmp_path_factory.mktemp("confounds")
    declared = _exp([VARIANTS[0], VARIANTS[2]], {"train.lr": WHY})
    path = _file(tmp, {"own": _exp(VARIANTS), "declared": declared})
    return {e: _sweep(path, tmp / "r", e) for e in ("own", "declared")} | {"file": path}


def test_own_training_settings_are_not_comparable_and_make_no_claim(swept):
    exp = swept["own"]
    rows = _diff_rows(exp)
    assert "not comparable: bi sets train.epochs = 4 alone" in rows["bi"]
    assert "not comparable: bi_shared sets train.lr = 0.5 alone" in rows["bi_shared"]
    assert all("[" not in row for row in rows.values())  # no interval
    diff = pd.read_csv(exp / "table_diff.csv").set_index("variant")
    assert set(diff["method"]) == {"not comparable"} and diff["ci_low"].isna().all()
    main_md = (exp / "table_main.md").read_text()
    assert "**" not in main_md  # no bold
    found = pd.read_csv(exp / "findings.csv").set_index("claim")
    sharing = found.loc["sharing the bi-directional parameters loses accuracy"]
    assert sharing["verdict"] == "not comparable" and sharing["claim_verdict"] != "holds"
    assert "bi sets train.epochs = 4" in sharing["evidence"]
    top = (exp / "report.md").read_text().split("## Setting")[0]
    assert "train.epochs: 2 (alternating s0, s1; bi_shared s0, s1) vs 4 (bi s0, s1)" in top
    assert "train.lr: 0.032 (alternating s0, s1; bi s0, s1) vs 0.5 (bi_shared s0, s1)" in top
    assert "confounded (declared)" not in top


def test_a_declared_confound_keeps_the_interval_and_says_so(swept):
    exp = swept["declared"]
    row = _diff_rows(exp)["bi_shared"]
    cells = [c.strip() for c in row.split("|")]
    assert cells[3].startswith("[") and "confounded (declared): train.lr" in cells[-2]
    assert "not comparable" not in row
    top = (exp / "report.md").read_text().split("## Setting")[0]
    assert "confounded (declared): train.lr: 0.032 (alternating s0, s1) vs 0.5" in top
    assert WHY in top and "runs trained differently" not in top
    rec = json.loads((exp / "runs" / "bi_shared-s1" / "result.json").read_text())
    assert rec["confounds"] == {"train.lr": WHY}


def test_declaring_after_the_runs_needs_no_retraining(swept, tmp_path):
    """The hint says "declare it in confounds:": the next sweep trains nothing and the
    finished runs' records, and so the report, carry the declaration."""
    spec = yaml.safe_load(swept["file"].read_text())
    spec["experiments"]["own"]["confounds"] = {"train.lr": WHY, "train.epochs": "bi: longer"}
    swept["file"].write_text(yaml.safe_dump(spec))
    exp = swept["own"]
    before = {r["variant"] + r["seed"]: r["finished_at"] for r in csv.DictReader(
        open(exp / "runs.csv"))}  # fmt: skip
    _sweep(swept["file"], exp.parents[1], "own")
    after = {r["variant"] + r["seed"]: r["finished_at"] for r in csv.DictReader(
        open(exp / "runs.csv"))}  # fmt: skip
    assert after == before  # nothing retrained
    rows = _diff_rows(exp)
    assert "confounded (declared): train.lr" in rows["bi_shared"]
    assert "confounded (declared): train.epochs" in rows["bi"] and "[" in rows["bi"]


@pytest.mark.parametrize(
    "confounds, says",
    [
        (
            {"train.lrr": "x"},
            "experiments.e.confounds.train.lrr: unknown key; valid: "
            "train.batch_size, train.betas, train.epochs,",
        ),
        ({"optim.lr": "x"}, "experiments.e.confounds.optim.lr: unknown key; valid: data."),
        ({"train.device": "x"}, "confounds.train.device: not a science key"),
        ({"train.seed": "x"}, "confounds.train.seed: the seed differs by design"),
        ({"model.traversal": "x"}, "confounds.model.traversal: the axis itself is the design"),
        ({"train.lr": ""}, "confounds.train.lr: expected a reason (a non-empty string)"),
        (["train.lr"], "experiments.e.confounds: expected a mapping key -> reason"),
    ],  # fmt: skip
)
def test_bad_declarations_are_one_line_errors(tmp_path, capsys, confounds, says):
    path = _file(tmp_path, {"e": _exp(VARIANTS, confounds)})
    with pytest.raises(ConfigError) as e:
        load_catalog(path)
    assert says in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)
    args = ["sweep", "e", "--experiments", str(path), "--protocol", "smoke", "--dry-run",
            "--results", str(tmp_path / "r")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_the_declaration_is_in_every_record_of_the_sweep(tmp_path):
    from ablations.sweep import SweepOptions, resolve

    path = _file(tmp_path, {"e": _exp(VARIANTS, {"train.lr": WHY})})
    s = resolve(SweepOptions("e", protocol="smoke", experiments_file=str(path)), False)
    assert {p.name: s.record_for(p).confounds for p in s.grid} == {
        p.name: {"train.lr": WHY} for p in s.grid}  # fmt: skip
    assert load_catalog(path).experiment("e").confounds == {"train.lr": WHY}
