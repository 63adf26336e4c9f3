"""Any config key as an experiment axis (the shipped ``init`` experiment), and ``eval``
reproducing a run's recorded numbers from its checkpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from tests.postgres import run_cli  # noqa: E402

FAST = ["--set", "data.train_samples=64", "--set", "data.val_samples=32"]


@pytest.fixture(scope="module")
def init_sweep(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("axes")
    done = run_cli("sweep", "init", "--protocol", "smoke", "--plain", *FAST, "--results",
                   str(results))  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return results / "smoke" / "init"


def test_init_axis_sweep_has_a_row_per_init(init_sweep):
    report = (init_sweep / "report.md").read_text()
    assert "| model.init |" in report and "| paper† |" in report and "| fixed |" in report
    for name in ("paper", "fixed"):
        rec = json.loads((init_sweep / "runs" / f"{name}-s0" / "result.json").read_text())
        assert rec["init"] == name and rec["axis"] == "model.init" and rec["axis_value"] == name
        assert rec["config"]["model"]["init"] == name
    paper, fixed = (json.loads((init_sweep / f"runs/{n}-s0/result.json").read_text())
                    for n in ("paper", "fixed"))  # fmt: skip
    assert paper["fingerprint"] != fixed["fingerprint"]  # the init is science


def test_eval_of_a_run_reproduces_its_recorded_numbers(init_sweep):
    run = init_sweep / "runs" / "fixed-s0"
    done = run_cli("eval", "--run", str(run), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    rec = json.loads((run / "result.json").read_text())
    assert got["top1"] == pytest.approx(rec["top1"]) and got["val_images"] == rec["val_images"]
    assert got["val_loss"] == pytest.approx(rec["val_loss"], rel=1e-5)


def test_eval_without_weights_is_one_line():
    done = run_cli("eval", "--protocol", "smoke")
    assert done.returncode == 2 and "model.pretrained" in done.stderr
    assert "Traceback" not in done.stderr
