"""A run stopped by its time budget before its last epoch is TRUNCATED: in runs.csv, status
and the report (left out of tables unless --include-truncated), and the next sweep retrains
it. One real smoke sweep (seconds: a 1 s time limit on 40 epochs)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from ablations.app.cli import main  # noqa: E402
from tests.postgres import run_cli  # noqa: E402

FAST = ["--set", "data.train_samples=64", "--set", "data.val_samples=32"]
LIMIT = ["--set", "train.time_limit_s=1", "--set", "train.epochs=40"]


def _ok(done) -> None:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_time_limited_smoke_sweep_is_truncated_and_retrained(tmp_path, capsys):
    where = ["table2", "--variants", "alternating", "--protocol", "smoke", "--results",
             str(tmp_path)]  # fmt: skip
    sweep = ["sweep", *where, "--plain", *FAST, *LIMIT]
    first = run_cli(*sweep)
    _ok(first)
    exp = tmp_path / "smoke" / "table2"
    (row,) = list(csv.DictReader(open(exp / "runs.csv")))
    assert row["state"] == "TRUNCATED" and row["epochs"] == "40", row
    assert int(row["epochs_done"]) < 40 and float(row["train_step_time_s"]) > 0
    assert row["fail_reason"].startswith("truncated: train.time_limit_s=1.0 reached after ")
    assert "TRUNCATED alternating-s0" in first.stderr and "FAILED" not in first.stderr
    assert main(["status", *where]) == 0  # (in this process: no second interpreter start)
    status = capsys.readouterr().out
    assert "TRUNCATED" in status and "COMPLETE" not in status
    page = (exp / "report.md").read_text()
    assert "1 TRUNCATED run(s) stopped before their last epoch and are left out" in page
    assert pd.read_csv(exp / "table_status.csv").loc[0, "truncated"] == 1
    assert pd.read_csv(exp / "table_main.csv").loc[0, "n_complete"] == 0
    again = run_cli(*sweep, "--no-report")  # the same command: never reused as done
    _ok(again)
    assert "enqueued alternating-s0 (retrain truncated run)" in again.stderr
    rec = json.loads((exp / "runs" / "alternating-s0" / "result.json").read_text())
    assert rec["attempt"] == 2 and rec["state"] == "TRUNCATED"
    assert main(["report", *where, "--include-truncated"]) == 0
    assert pd.read_csv(exp / "table_main.csv").loc[0, "n_complete"] == 1
    assert "are included in the tables and intervals" in (exp / "report.md").read_text()
