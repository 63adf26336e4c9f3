"""Sweeps on the default journal storage: faults (SIGINT, NaN), local workers, torchrun."""

from __future__ import annotations

import csv
import json
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from tests.postgres import REPO, cli_env, run_cli, start_cli  # noqa: E402

SMOKE = ["--protocol", "smoke", "--no-report", "--plain"]


def _rows(results: Path, exp: str = "table2", protocol: str = "smoke") -> dict[str, dict]:
    path = results / protocol / exp / "runs.csv"
    return {r["variant"]: r for r in csv.DictReader(open(path))}


def _result(results: Path, run: str, exp: str = "table2") -> dict:
    return json.loads((results / "smoke" / exp / "runs" / run / "result.json").read_text())


def _metrics(results: Path, run: str) -> list[dict]:
    rows = csv.DictReader(open(results / "smoke" / "table2" / "runs" / run / "metrics.csv"))
    keep = ("epoch", "step", "lr", "train_loss", "val_loss", "val_top1", "val_top5")
    return [{k: r[k] for k in keep} for r in rows]


def test_sigint_stops_cleanly_and_resume_matches_uninterrupted_run(tmp_path):
    args = ["sweep", "table2", "--variants", "alternating", *SMOKE, "--set", "train.epochs=4"]
    ref = run_cli(*args, "--results", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stdout[-2000:] + ref.stderr[-2000:]
    out = tmp_path / "int"
    proc = start_cli(*args, "--results", str(out), log=tmp_path / "int.log")
    ckpt = out / "smoke" / "table2" / "runs" / "alternating-s0" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130, (tmp_path / "int.log").read_text()[-3000:]
    row = _rows(out)["alternating"]
    assert row["state"] == "INTERRUPTED" and row["fail_reason"] == "interrupted"
    stopped = _result(out, "alternating-s0")
    assert stopped["state"] == "INTERRUPTED" and stopped["fail_reason"] == "interrupted"
    again = run_cli(*args, "--results", str(out))
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    resumed, full = _result(out, "alternating-s0"), _result(tmp_path / "ref", "alternating-s0")
    assert resumed["state"] == "COMPLETE" and resumed["resumed_from"]["global"] > 0
    for key in ("top1", "top5", "val_loss"):
        assert resumed[key] == pytest.approx(full[key], abs=1e-6), key
    assert _metrics(out, "alternating-s0") == _metrics(tmp_path / "ref", "alternating-s0")
    assert _rows(out)["alternating"]["state"] == "COMPLETE"


def _experiments_with_nan(tmp_path: Path) -> Path:
    spec = yaml.safe_load((REPO / "ablations" / "experiments.yaml").read_text())
    spec["experiments"] = {"nan": {
        "axis": "traversal", "reference": "alternating", "seeds": [0],
        "variants": ["alternating", {"name": "uni", "pooling": "last",
                                     "set": {"train.inject_nan_at_step": 2}}, "bi_shared"],
    }}  # fmt: skip
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_nan_fails_that_trial_with_its_reason_and_the_sweep_goes_on(tmp_path):
    exps = _experiments_with_nan(tmp_path)
    done = run_cli("sweep", "nan", "--experiments", str(exps), "--results", str(tmp_path), *SMOKE)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]  # a point failed
    assert "FAILED uni-s0: TrialFailed: non-finite loss" in done.stderr
    assert "--retry-failed" in done.stderr
    rows = _rows(tmp_path, "nan")
    assert rows["alternating"]["state"] == rows["bi_shared"]["state"] == "COMPLETE"
    assert rows["uni"]["state"] == "FAIL"
    assert (
        "non-finite loss" in rows["uni"]["fail_reason"] and "step 2" in rows["uni"]["fail_reason"]
    )
    result = _result(tmp_path, "uni-s0", "nan")
    assert result["state"] == "FAIL" and "non-finite loss" in result["fail_reason"]
    again = run_cli("sweep", "nan", "--experiments", str(exps), "--results", str(tmp_path), *SMOKE)
    assert again.returncode == 1 and "uni-s0: " not in again.stdout  # failed: not retried


def test_local_workers_share_the_journal_and_runs_are_not_retrained(tmp_path):
    args = ["sweep", "table3", "--variants", "avg,middle_cls,bilateral_concat", *SMOKE,
            "--results", str(tmp_path)]  # fmt: skip
    done = run_cli(*args, "--workers", "2")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = _rows(tmp_path, "table3")
    assert {r["state"] for r in rows.values()} == {"COMPLETE"} and len(rows) == 3
    assert (tmp_path / "smoke" / "table3" / "logs" / "worker-1.log").exists()
    info = json.loads((tmp_path / "smoke" / "table3" / "experiment.json").read_text())
    assert info["protocol"] == "smoke" and info["axis"] == "pooling"
    record = _result(tmp_path, "avg-s0", "table3")
    assert any(d.startswith("data.dataset: synthetic") for d in record["deviations"])
    again = run_cli(*args)
    assert again.returncode == 0 and " steps" not in again.stdout  # nothing retrained
    other = run_cli(*args[:-4], "--protocol", "demo", "--results", str(tmp_path), "--dry-run")
    assert other.returncode == 0  # a dry run writes nothing
    assert not (tmp_path / "demo").exists()


def test_torchrun_two_process_trial(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed next to the interpreter")
    import subprocess

    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "ablations.app.cli",
           "sweep", "table2", "--variants", "alternating", *SMOKE,
           "--results", str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = _result(tmp_path, "alternating-s0")
    assert result["state"] == "COMPLETE" and result["world_size"] == 2
    assert _rows(tmp_path)["alternating"]["state"] == "COMPLETE"


def test_deviations_skip_synthetic_only_knobs_for_real_data():
    from ablations.schema.points import deviations

    paper = {"data": {"dataset": "imagenet100", "train_samples": 20000, "img_size": 128}}
    synthetic = {"data": {"dataset": "synthetic", "train_samples": 2048, "img_size": 32}}
    real = {"data": {"dataset": "imagefolder", "train_samples": 2048, "img_size": 128}}
    got = deviations(synthetic, paper, "model.traversal", {}, {})
    assert "data.train_samples: 2048 (synthetic data only)" in got
    assert "data.img_size: 32 (paper: 128)" in got
    assert deviations(real, paper, "model.traversal", {}, {}) == [
        "data.dataset: imagefolder (paper: imagenet100)"
    ]
