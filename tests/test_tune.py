"""`tune` (per-variant Optuna studies on the tuning split) and `sweep --tuned`."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from ablations.app.tune_command import make_job  # noqa: E402
from ablations.data.split import select  # noqa: E402
from ablations.study.tune import counted  # noqa: E402
from ablations.sweep import SweepOptions  # noqa: E402
from tests.postgres import REPO, run_cli, start_cli  # noqa: E402

SMOKE = ["--protocol", "smoke", "--plain"]
# Enough data and lr for the smoke model to learn in 3 short epochs (the pruner's case).
LEARNS = ["--set", "data.train_samples=512", "--set", "train.lr=0.128"]
ONE_EPOCH = ["--set", "train.epochs=1"]


def _study(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def _journal(results: Path, exp: str = "table2") -> str:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(results / "smoke" / exp / "optuna.journal")))


def test_tune_trials_use_the_tuning_split_disjoint_from_train_and_never_val():
    job = make_job(SweepOptions("table2", protocol="smoke"), 4, check_data=False)
    for v in job.variants:
        cfg = job.trial_config(v, {"train.lr": 0.01})
        assert cfg.data.split == "tune" and cfg.train.lr == 0.01
        assert cfg.train.epochs == max(1, round(job.base(v).train.epochs / 10))  # the default
    labels = [i % 4 for i in range(128)]
    train_idx, val_idx, source = select(cfg.data, labels, list(range(64)))
    assert source == "train"  # the held-out images come from the training split
    assert not set(train_idx) & set(val_idx) and len(val_idx) == round(0.1 * 32) * 4


def test_dry_run_prices_trials_times_budget(tmp_path):
    done = run_cli("tune", "table2", "--variants", "alternating,quad", "--budget", "5",
                   "--dry-run", "--json", "--results", str(tmp_path), *SMOKE)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["variant"]: r for r in json.loads(done.stdout)}
    for r in rows.values():
        per_trial = r["flops"] * 3 * r["batch_size"] * (r["train_images"] // r["batch_size"])
        assert r["trials"] == 5 and r["train_flops"] == pytest.approx(5 * per_trial * r["epochs"])
    assert not (tmp_path / "smoke").exists()  # nothing written


def test_two_workers_run_the_budget_exactly_once_then_sweep_tuned_uses_the_best(tmp_path):
    args = ["tune", "table2", "--variants", "alternating,uni", "--budget", "3",
            "--results", str(tmp_path), *SMOKE, *ONE_EPOCH]  # fmt: skip
    # Two workers started together (as on two machines; --workers 2 spawns its second one
    # only after its own set-up, and a 1-epoch smoke trial can be over by then).
    procs = [start_cli(*args, log=tmp_path / f"w{i}.log") for i in range(2)]
    codes = [p.wait(timeout=600) for p in procs]
    assert codes == [0, 0], "".join((tmp_path / f"w{i}.log").read_text()[-2000:] for i in (0, 1))
    storage, workers = _journal(tmp_path), set()
    for v in ("alternating", "uni"):
        trials = _study(storage, f"table2@smoke/tune/{v}").get_trials()
        assert len(trials) == 3 == counted(_study(storage, f"table2@smoke/tune/{v}")), trials
        assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
        workers |= {t.user_attrs["worker"] for t in trials}
        recs = [
            json.loads(p.read_text())
            for p in (tmp_path / "smoke/table2/tune" / v).glob("t*/result.json")
        ]
        assert len(recs) == 3 and all(r["config"]["data"]["split"] == "tune" for r in recs)
        for r in recs:  # tuned on images held out of the training split, never on val
            assert r["data"]["val_source"] == "train"
            assert r["train_images"] + r["val_images"] == r["config"]["data"]["train_samples"]
        assert Counter(r["state"] for r in recs) == Counter(t.state.name for t in trials)
    assert len(workers) == 2, "both workers should have trained a trial"
    again = run_cli(*args, "--workers", "2")  # the budget is spent: nothing more is trained
    assert again.returncode == 0 and "epoch 1" not in again.stdout + again.stderr
    for v in ("alternating", "uni"):
        assert len(_study(storage, f"table2@smoke/tune/{v}").get_trials()) == 3
    sweep = run_cli("sweep", "table2", "--variants", "alternating,uni", "--tuned",
                    "--results", str(tmp_path), *SMOKE, *ONE_EPOCH)  # fmt: skip
    assert sweep.returncode == 0, sweep.stdout[-2000:] + sweep.stderr[-2000:]
    for v in ("alternating", "uni"):
        best = _study(storage, f"table2@smoke/tune/{v}").best_trial
        rec = json.loads((tmp_path / f"smoke/table2/runs/{v}-s0/result.json").read_text())
        assert (
            rec["tuned"] == best.params and rec["config"]["train"]["lr"] == best.params["train.lr"]
        )
        assert rec["tune_trials"] == 3 and rec["config"]["data"]["split"] == "standard"
    report = (tmp_path / "smoke/table2/report.md").read_text()
    assert "## Tuning" in report and "figures/tune_sensitivity.png" in report
    assert (tmp_path / "smoke/table2/figures/tune_sensitivity.png").stat().st_size > 0


def test_sweep_tuned_without_a_tune_study_is_one_line_before_training(tmp_path):
    done = run_cli(
        "sweep", "table2", "--variants", "bi", "--tuned", "--results", str(tmp_path), *SMOKE
    )
    assert done.returncode == 1
    assert "--tuned: variant bi has no finished tune study 'table2@smoke/tune/bi'" in done.stderr
    assert (
        len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "smoke/table2/runs").exists()
    )


def _diverging_experiment(tmp_path: Path) -> Path:
    """One variant, two start points: the protocol's lr, then 30x it. With LEARNS the first
    reaches ~60% tuning top-1 after epoch 1 (4 classes); the second ~35%, and its loss goes
    NaN in epoch 2 (measured), so the pruner must stop it after epoch 1 (PRUNED, not FAIL)."""
    spec = yaml.safe_load((REPO / "ablations" / "experiments.yaml").read_text())
    tune = {"space": {"train.lr": {"low_factor": 0.5, "high_factor": 100}},
            "start": [{"train.lr": 1}, {"train.lr": 30}], "budget_epochs": 3}  # fmt: skip
    spec["experiments"] = {"diverge": {"axis": "traversal", "reference": "alternating",
                                       "variants": ["alternating"], "tune": tune}}  # fmt: skip
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_pruner_stops_the_trial_whose_lr_diverges(tmp_path):
    exps = _diverging_experiment(tmp_path)
    done = run_cli("tune", "diverge", "--experiments", str(exps), "--budget", "2",
                   "--results", str(tmp_path), *SMOKE, *LEARNS)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    trials = _study(_journal(tmp_path, "diverge"), "diverge@smoke/tune/alternating").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    assert trials[1].params["train.lr"] == pytest.approx(30 * trials[0].params["train.lr"])
    rec = json.loads((tmp_path / "smoke/diverge/tune/alternating/t1/result.json").read_text())
    assert rec["state"] == "PRUNED" and rec["fail_reason"].startswith("pruned at epoch 1")
    assert rec["epochs_done"] == 1 < rec["epochs"] and rec["top1"] < trials[0].value
    assert "diverge@smoke/tune/alternating: 2 trials (1 pruned), best #0" in done.stdout
    status = run_cli("status", "diverge", "--experiments", str(exps), "--results", str(tmp_path),
                     "--protocol", "smoke", *LEARNS)  # fmt: skip
    assert "diverge@smoke/tune/alternating: 2 trials (1 pruned)" in status.stdout, status.stderr
    changed = run_cli("tune", "diverge", "--experiments", str(exps), "--budget", "3",
                      "--results", str(tmp_path), *SMOKE, *LEARNS,
                      "--set", "train.epochs=3")  # fmt: skip
    assert changed.returncode == 1 and "were made with another setting" in changed.stderr
    tuned = run_cli("sweep", "diverge", "--experiments", str(exps), "--tuned", "--results",
                    str(tmp_path), *SMOKE, *LEARNS, "--set", "train.epochs=3")  # fmt: skip
    assert tuned.returncode == 1 and "was tuned with another setting" in tuned.stderr
    assert not (tmp_path / "smoke/diverge/runs").exists()
