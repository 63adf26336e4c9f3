"""train.trackers: TensorBoard, MLflow (local SQLite store) and W&B (offline) hold the run
record's values; a resumed trial continues its tracker runs with no step twice; a broken or
hanging tracker never fails or stalls a trial; bad names are config errors before training."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
import threading
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from ablations.app.cli import main  # noqa: E402
from ablations.schema.catalog import load_catalog  # noqa: E402
from ablations.schema.config import apply, flatten, parse_set, science  # noqa: E402
from ablations.schema.record import RunRecord  # noqa: E402
from ablations.train import trackers, train  # noqa: E402
from tests import tracker_readers as read  # noqa: E402
from tests.postgres import run_cli  # noqa: E402

ALL = ["tensorboard", "mlflow", "wandb"]
MISSING = [m for m in ALL if importlib.util.find_spec(m) is None]
needs_all = pytest.mark.skipif(
    bool(MISSING), reason=f"not installed: {', '.join(MISSING)} (pip install -e '.[trackers]')"
)


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    """W&B offline with its config and caches in the test folder; MLflow's default store."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cfg(**train_over):
    cat = load_catalog()
    cfg = cat.experiment("table2").config_for(cat.protocol("smoke"), "alternating", 0)
    over = {"data": {"train_samples": 64, "val_samples": 32, "img_size": 16}}
    train_cfg = {"batch_size": 16, "epochs": 2, "log_every": 2, **train_over}
    return apply(cfg, {**over, "train": train_cfg}, "test")  # 4 steps/epoch, reads at 2, 4, ...


def _record() -> RunRecord:
    return RunRecord(experiment="table2", protocol="smoke", variant="alternating", seed=0,
                     run_dir="runs/alternating-s0")  # fmt: skip


def _rows(run_dir: Path) -> list[dict]:
    keep = ("epoch", "step", "lr", "train_loss", "val_loss", "val_top1", "val_top5")  # not timing
    return [{k: r[k] for k in keep} for r in csv.DictReader(open(run_dir / "metrics.csv"))]


def _steps(series: list[tuple[int, float]]) -> list[int]:
    return [s for s, _ in series]


def test_set_takes_a_comma_list_that_is_not_science():
    cfg = apply(_cfg(), parse_set(["train.trackers=tensorboard,mlflow"]), "--set")
    assert cfg.train.trackers == ["tensorboard", "mlflow"]
    assert apply(_cfg(), {"train": {"trackers": ["wandb"]}}, "t").train.trackers == ["wandb"]
    assert science(cfg) == science(_cfg())  # the fingerprint does not change
    with pytest.raises(ValueError, match=r"t: train.trackers: expected a list, got 3"):
        apply(_cfg(), {"train": {"trackers": 3}}, "t")


def test_unknown_or_missing_tracker_is_one_line_before_any_folder(capsys, tmp_path, monkeypatch):
    args = ["sweep", "table2", "--protocol", "smoke", "--results", str(tmp_path / "r")]
    assert main([*args, "--set", "train.trackers=tensorboard,neptune"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("train.trackers: unknown tracker 'neptune'; valid: mlflow, tensorboard, "
                        "wandb") and "\n" not in err, err  # fmt: skip
    missing = trackers.Entry("no_such_pkg_i23", object)
    monkeypatch.setitem(trackers.TRACKERS._entries, "wandb", missing)
    assert main([*args, "--set", "train.trackers=[wandb]", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "tracker 'wandb' needs the no_such_pkg_i23 package" in err and "\n" not in err
    assert err.endswith("pip install vil-ablate[trackers]"), err
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="unknown tracker 'x'"):  # a bare train() call too
        train(_cfg(trackers=["x"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _check_epochs(series: dict, rows: list[dict], rel: float) -> None:
    """The per-epoch values equal metrics.csv's rows (rounded there to 6 digits)."""
    for key, col in (("val/top1", "val_top1"), ("val/top5", "val_top5"),
                     ("epoch/train_loss", "train_loss"), ("epoch/lr", "lr")):  # fmt: skip
        want = [(int(r["step"]), float(r[col])) for r in rows]
        assert _steps(series[key]) == [s for s, _ in want], key
        assert [v for _, v in series[key]] == pytest.approx([v for _, v in want], rel=rel), key


@pytest.mark.slow  # the three libraries' start-up: ~20-80 s on 2 shared cores
@needs_all
def test_smoke_sweep_logs_the_run_record_to_all_three(tmp_path):
    out = tmp_path / "results"
    done = run_cli("sweep", "table2", "--variants", "alternating", "--seeds", "0", "--protocol",
                   "smoke", "--plain", "--results", str(out), "--set", "train.log_every=2",
                   "--set", "train.trackers=tensorboard,mlflow,wandb")  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    run_dir = out / "smoke" / "table2" / "runs" / "alternating-s0"
    rec, rows = json.loads((run_dir / "result.json").read_text()), _rows(run_dir)
    state = json.loads((run_dir / trackers.STATE_FILE).read_text())
    assert rec["state"] == "COMPLETE" and len(rows) == 2 and "tracker" not in done.stderr
    reads = [2, 4, 6, 8]  # log_every=2: the loss is read to the host at these steps

    tb = read.tensorboard_scalars(run_dir)  # float32 on disk
    assert _steps(tb["train/loss"]) == reads and _steps(tb["train/lr"]) == reads
    _check_epochs(tb, rows, rel=1e-5)
    assert tb["val/top1"][-1][1] == pytest.approx(rec["top1"], rel=1e-6)

    db = out / "mlruns" / "mlflow.db"
    assert state["mlflow"]["uri"] == f"sqlite:///{db.resolve()}" and db.exists()
    ml = read.mlflow_run(state["mlflow"]["uri"], state["mlflow"]["id"])
    assert ml["experiment"] == "smoke/table2" and ml["name"] == "runs/alternating-s0"
    assert ml["status"] == "FINISHED" and ml["tags"]["state"] == "COMPLETE"
    assert _steps(ml["metrics"]["train/loss"]) == reads
    _check_epochs(ml["metrics"], rows, rel=1e-5)
    assert ml["metrics"]["val/top1"][-1][1] == rec["top1"]  # the same float, not rounded
    flat = {k: str(v) for k, v in flatten(rec["config"]).items()}
    assert ml["params"] == {**flat, "fingerprint": rec["fingerprint"], "variant": "alternating",
                            "seed": "0", "experiment": "table2", "protocol": "smoke"}  # fmt: skip
    assert {"result.json", "config.yaml", "metrics.csv", "report/report.md"} <= set(ml["artifacts"])
    assert "report/figures/top1.png" in ml["artifacts"], ml["artifacts"]

    (wb,) = read.wandb_runs(run_dir)
    assert wb["id"] == state["wandb"]["id"] and wb["group"] == "smoke/table2"
    assert wb["config"]["fingerprint"] == rec["fingerprint"]
    assert wb["config"]["model.traversal"] == "alternating" and wb["config"]["train.epochs"] == 2
    assert sorted(wb["history"]) == reads
    series = {k: [(s, h[k]) for s, h in sorted(wb["history"].items()) if k in h]
              for k in ("val/top1", "val/top5", "epoch/train_loss", "epoch/lr")}  # fmt: skip
    _check_epochs(series, rows, rel=1e-5)
    for key in ("top1", "top5", "val_loss", "fingerprint", "steps_done", "state"):
        assert wb["summary"][key] == rec[key], key


@pytest.mark.slow  # the three libraries' start-up: ~20-80 s on 2 shared cores
@needs_all
def test_resumed_trial_continues_its_tracker_runs_without_repeating_steps(tmp_path, monkeypatch):
    from ablations.train import epoch

    run = tmp_path / "smoke" / "table2" / "runs" / "alternating-s0"
    cfg, steps, real_step = _cfg(trackers=ALL), {"n": 0}, epoch.train_step

    def counted(*args, **kwargs):
        steps["n"] += 1
        return real_step(*args, **kwargs)

    monkeypatch.setattr(epoch, "train_step", counted)

    def crash_before_step_7() -> bool:  # no checkpoint at the crash: the last one is step 4
        if steps["n"] >= 6:
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, should_stop=crash_before_step_7, record=_record())
    first = json.loads((run / trackers.STATE_FILE).read_text())
    assert {name: e["last"] for name, e in first.items()} == {
        n: {"step": 6, "epoch": 4} for n in ALL}  # fmt: skip
    rec = train(cfg, run, record=_record()).to_dict()
    assert rec["resumed_from"]["global"] == 4  # steps 5 and 6 ran (and were logged) twice
    again = json.loads((run / trackers.STATE_FILE).read_text())
    assert {n: e["id"] for n, e in again.items()} == {n: e["id"] for n, e in first.items()}

    tb = read.tensorboard_scalars(run)
    assert _steps(tb["train/loss"]) == [2, 4, 6, 8] and _steps(tb["val/top1"]) == [4, 8]
    ml = read.mlflow_run(again["mlflow"]["uri"], again["mlflow"]["id"])
    assert _steps(ml["metrics"]["train/loss"]) == [2, 4, 6, 8] and ml["status"] == "FINISHED"
    assert ml["metrics"]["val/top1"][-1] == (8, rec["top1"])
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=again["mlflow"]["uri"])
    exp = client.get_experiment_by_name("smoke/table2")
    assert len(client.search_runs([exp.experiment_id])) == 1  # continued, not a second run
    before, after = read.wandb_runs(run)  # offline: one file per attempt, the same run id
    assert before["id"] == after["id"] == again["wandb"]["id"]
    assert sorted(before["history"]) == [2, 4, 6] and sorted(after["history"]) == [8]
    assert after["history"][8]["val/top1"] == rec["top1"] == after["summary"]["top1"]


class _Broken:
    """Starts, then fails on the first values (a full disk, a server gone)."""

    calls = 0

    def start(self, info, resume_id):
        return "broken-1"

    def log_params(self, params):
        pass

    def log_metrics(self, step, metrics):
        _Broken.calls += 1
        raise OSError(28, "No space left on device")


class _Stuck(_Broken):
    """Hangs on its first values (an unreachable server) until the test ends."""

    release = threading.Event()

    def log_metrics(self, step, metrics):
        _Stuck.release.wait()


def test_broken_or_hanging_tracker_warns_once_and_the_trial_is_unchanged(tmp_path, monkeypatch):
    plain = train(_cfg(), tmp_path / "plain").to_dict()
    for name, cls in (("broken", _Broken), ("stuck", _Stuck)):
        monkeypatch.setitem(trackers.TRACKERS._entries, name, trackers.Entry("json", cls))
    monkeypatch.setattr(trackers, "CLOSE_TIMEOUT_S", 2.0)
    try:
        rec = train(_cfg(trackers=["broken", "stuck"]), tmp_path / "run").to_dict()
    finally:
        _Stuck.release.set()
    assert rec["state"] == "COMPLETE" and _Broken.calls == 1  # dropped after its failure
    for key in ("top1", "top5", "val_loss", "steps_done"):
        assert rec[key] == plain[key], key
    assert _rows(tmp_path / "run") == _rows(tmp_path / "plain")  # same numbers, same steps
    log = (tmp_path / "run" / "train.log").read_text()
    assert log.count("tracker broken failed (OSError") == 1
    assert log.count("trackers stuck did not finish within 2 s") == 1
    assert "WARNING" not in (tmp_path / "plain" / "train.log").read_text()
