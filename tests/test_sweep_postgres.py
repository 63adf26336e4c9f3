"""Sweeps shared by several workers through a real PostgreSQL server (started by the fixture)."""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from tests.postgres import new_database, pg_url, start_cli  # noqa: E402, F401

pytestmark = pytest.mark.postgres


def _sweep_args(url: str, results: Path, variants: str, seeds: str, *extra: str) -> list[str]:
    return [
        "sweep", "table2", "--protocol", "smoke", "--variants", variants, "--seeds", seeds,
        "--storage", url, "--results", str(results), "--no-report", "--plain", *extra,
    ]  # fmt: skip


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name="table2@smoke", storage=url).get_trials()
    except KeyError:  # not created yet
        return []


def _wait(procs, timeout: float) -> list[int]:
    deadline = time.time() + timeout
    codes = []
    for p in procs:
        codes.append(p.wait(timeout=max(deadline - time.time(), 1)))
    return codes


def test_two_workers_train_every_point_exactly_once(pg_url, tmp_path):  # noqa: F811
    url = new_database(pg_url)
    args = _sweep_args(url, tmp_path, "uni,alternating,bi_shared", "0,1")
    workers = [start_cli(*args, log=tmp_path / f"w{i}.log") for i in range(2)]
    codes = _wait(workers, timeout=240)
    logs = "".join((tmp_path / f"w{i}.log").read_text()[-2000:] for i in range(2))
    assert codes == [0, 0], logs
    trials = _trials(url)
    points = Counter((t.user_attrs["variant"], t.user_attrs["seed"]) for t in trials)
    assert len(points) == 6 and set(points.values()) == {1}, points  # no duplicates
    assert all(t.state.name == "COMPLETE" for t in trials)
    workers_used = {t.user_attrs["worker"] for t in trials}
    assert len(workers_used) == 2, "both workers should have trained something"
    rows = list(csv.DictReader(open(tmp_path / "smoke" / "table2" / "runs.csv")))
    assert len(rows) == 6 and {r["state"] for r in rows} == {"COMPLETE"}


def _running_trial_of(url: str, pid: int, results: Path):
    """A RUNNING trial of worker ``pid`` with a checkpoint already written, or None."""
    for t in _trials(url):
        if t.state.name == "RUNNING" and t.user_attrs.get("worker", "").endswith(f":{pid}"):
            if (results / "smoke" / "table2" / t.user_attrs["run_dir"] / "checkpoint.pt").exists():
                return t
    return None


def test_killed_worker_trial_is_retried_from_checkpoint(pg_url, tmp_path):  # noqa: F811
    url = new_database(pg_url)
    args = _sweep_args(url, tmp_path, "uni,alternating", "0", "--heartbeat", "1", "--grace",
                       "3", "--set", "train.epochs=8")  # fmt: skip
    victim = start_cli(*args, log=tmp_path / "victim.log")
    deadline, trial = time.time() + 120, None
    while trial is None and time.time() < deadline and victim.poll() is None:
        time.sleep(0.1)
        trial = _running_trial_of(url, victim.pid, tmp_path)
    assert trial is not None, (tmp_path / "victim.log").read_text()[-2000:]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    survivor = start_cli(*args, log=tmp_path / "survivor.log")
    assert _wait([survivor], timeout=240) == [0], (tmp_path / "survivor.log").read_text()[-3000:]
    trials = _trials(url)
    mine = [t for t in trials if t.user_attrs["variant"] == trial.user_attrs["variant"]]
    assert [t.state.name for t in mine] == ["FAIL", "COMPLETE"]
    assert mine[1].user_attrs["resume"] is True
    result = json.loads(
        (tmp_path / "smoke" / "table2" / trial.user_attrs["run_dir"] / "result.json").read_text()
    )
    assert result["state"] == "COMPLETE" and result["resumed_from"]["epoch"] >= 1
    rows = list(csv.DictReader(open(tmp_path / "smoke" / "table2" / "runs.csv")))
    assert {r["state"] for r in rows} == {"COMPLETE"} and len(rows) == 2


def test_storage_benchmark_on_postgres_claims_each_trial_once(pg_url, tmp_path):  # noqa: F811
    """bench_sweep_scaling's storage phase on PostgreSQL: 3 workers drain 15 trials."""
    from benchmarks import storage_overhead

    url = new_database(pg_url)
    row = storage_overhead.measure(3, 15, tmp_path, url)
    assert row["trials"] == 15 and row["storage_ms_per_trial"] > 0
    study = optuna.load_study(study_name=row["study"], storage=url)
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.COMPLETE] * 15


def test_plain_postgresql_url_works_and_a_wrong_password_is_one_line(pg_url, tmp_path):  # noqa: F811
    """``postgresql://`` (as --help shows it) picks the installed driver; a wrong password
    gives one line with the masked URL and leaves no results folder behind."""
    url = new_database(pg_url).replace("postgresql+psycopg2://", "postgresql://")
    args = _sweep_args(url, tmp_path / "ok", "alternating", "0")
    ok = start_cli(*args, log=tmp_path / "ok.log")
    assert _wait([ok], timeout=240) == [0], (tmp_path / "ok.log").read_text()[-2000:]
    assert (tmp_path / "ok" / "smoke" / "table2" / "runs.csv").exists()
    wrong = url.replace(":vil-test-pw@", ":not-the-password@")
    bad = start_cli(*_sweep_args(wrong, tmp_path / "bad", "alternating", "0"),
                    log=tmp_path / "bad.log")  # fmt: skip
    assert _wait([bad], timeout=120) == [1]
    err = [ln for ln in (tmp_path / "bad.log").read_text().splitlines() if ln.strip()]
    assert len(err) == 1 and "postgres:***@127.0.0.1" in err[0], err
    assert "not-the-password" not in err[0] and "password authentication failed" in err[0]
    assert not (tmp_path / "bad").exists()
