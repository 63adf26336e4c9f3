"""`tune` with two workers on a real PostgreSQL server: N trials per variant, exactly once."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from tests.postgres import new_database, pg_url, start_cli  # noqa: E402, F401

pytestmark = pytest.mark.postgres


def test_two_tune_workers_share_one_database(pg_url, tmp_path):  # noqa: F811
    url = new_database(pg_url)
    # Tune trials of 3 epochs (a tenth of 30): a worker still creating Optuna's schema when
    # the other starts training finds trials left when it is ready.
    args = ["tune", "table2", "--protocol", "smoke", "--variants", "alternating", "--budget",
            "4", "--storage", url, "--results", str(tmp_path), "--plain",
            "--set", "train.epochs=30"]  # fmt: skip
    workers = [start_cli(*args, log=tmp_path / f"w{i}.log") for i in range(2)]  # two machines
    codes = [w.wait(timeout=600) for w in workers]
    logs = "".join((tmp_path / f"w{i}.log").read_text()[-2000:] for i in range(2))
    assert codes == [0, 0], logs
    trials = optuna.load_study(study_name="table2@smoke/tune/alternating", storage=url).get_trials()
    assert len(trials) == 4 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}, logs
    assert len({t.number for t in trials}) == 4
    assert len({t.user_attrs["worker"] for t in trials}) == 2, "both workers should have trained"
    assert len(list((tmp_path / "smoke/table2/tune/alternating").glob("t*/result.json"))) == 4
