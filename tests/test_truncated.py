"""A run stopped by its time budget before its last epoch is TRUNCATED: in runs.csv, status
and the report (left out of tables unless --include-truncated), and the next sweep resumes
it from its checkpoint (the budget is not science): a larger budget goes on from the step the
last one stopped at. Real smoke sweeps (seconds: a 1 s time limit on 40 epochs; 3 of 8 steps)."""

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


def test_time_limited_smoke_sweep_is_truncated_and_resumed(tmp_path, capsys):
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
    assert "enqueued alternating-s0 (resume truncated run)" in again.stderr
    rec = json.loads((exp / "runs" / "alternating-s0" / "result.json").read_text())
    assert rec["attempt"] == 2 and rec["state"] == "TRUNCATED" and rec["resumes"] == 1
    # the limit counts the run's whole wall time: the same budget is spent, nothing retrained
    assert rec["steps_done"] == int(row["steps_done"])
    assert main(["report", *where, "--include-truncated"]) == 0
    assert pd.read_csv(exp / "table_main.csv").loc[0, "n_complete"] == 1
    assert "are included in the tables and intervals" in (exp / "report.md").read_text()


def test_a_larger_budget_resumes_the_truncated_run_where_it_stopped(tmp_path):
    """max_steps 3 of 8: TRUNCATED; the command without the budget resumes at step 3 (one
    resumption, each epoch once in the curve) and ends with the uninterrupted run's weights."""
    where = ["table2", "--variants", "uni", "--protocol", "smoke", "--plain", "--no-report"]
    cut = run_cli("sweep", *where, "--results", str(tmp_path / "a"), "--set", "train.max_steps=3")
    _ok(cut)
    run = tmp_path / "a" / "smoke" / "table2" / "runs" / "uni-s0"
    rec = json.loads((run / "result.json").read_text())
    assert rec["state"] == "TRUNCATED" and rec["steps_done"] == 3, rec
    full = run_cli("sweep", *where, "--results", str(tmp_path / "a"))
    _ok(full)
    assert "enqueued uni-s0 (resume truncated run)" in full.stderr
    rec = json.loads((run / "result.json").read_text())
    assert rec["state"] == "COMPLETE" and rec["resumes"] == 1 and rec["steps_done"] == 8, rec
    epochs = [r["epoch"] for r in csv.DictReader(open(run / "metrics.csv"))]
    assert epochs == sorted(set(epochs)) and len(epochs) == rec["epochs_done"], epochs
    _ok(run_cli("sweep", *where, "--results", str(tmp_path / "b")))  # never interrupted
    ref = tmp_path / "b" / "smoke" / "table2" / "runs" / "uni-s0" / "result.json"
    assert json.loads(ref.read_text())["top1"] == rec["top1"]
