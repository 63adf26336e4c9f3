"""optuna-dashboard on a smoke sweep's journal: the server lists the sweep's and the tune's
studies from its HTTP API (loopback only)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from tests.ports import free_port  # noqa: E402
from tests.postgres import cli_env, run_cli  # noqa: E402

pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed (test extra)")


def _studies(port: int, timeout: float = 60) -> list[str]:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                return [s["study_name"] for s in json.load(r)["study_summaries"]]
        except OSError:  # not listening yet
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def test_dashboard_lists_the_sweep_and_tune_studies_of_a_journal(tmp_path):
    args = ["--protocol", "smoke", "--plain", "--set", "train.epochs=1", "--results", str(tmp_path)]
    done = run_cli("sweep", "table2", "--variants", "alternating", "--no-report", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    tuned = run_cli("tune", "table2", "--variants", "uni", "--budget", "1", *args)
    assert tuned.returncode == 0, tuned.stderr[-2000:]
    journal = tmp_path / "smoke" / "table2" / "optuna.journal"
    port = free_port()
    cmd = [sys.executable, "-c", "from optuna_dashboard._cli import main; main()", str(journal),
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert {"table2@smoke", "table2@smoke/tune/uni"} <= set(_studies(port))
    finally:
        server.terminate()
        server.wait(timeout=30)
