"""A tune study holds the trials of one search: its stamp covers the trial config, the search
space (resolved ranges), the start points, the pruner and the sampler seed (no training)."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from ablations.app.tune_command import make_job  # noqa: E402
from ablations.study.tune import TuneError, open_tune_study, stamp  # noqa: E402
from ablations.sweep import SweepOptions  # noqa: E402
from ablations.tune.worker import load_tuned  # noqa: E402
from tests.postgres import REPO  # noqa: E402

BASE = {"space": {"train.lr": {"low_factor": 0.5, "high_factor": 2}}}
CHANGES = [  # (what changed, tune block, the key the refusal names)
    ("space", {"space": {"train.lr": {"low_factor": 0.25, "high_factor": 2}}}, "space"),
    ("pruner", {**BASE, "pruner": "hyperband"}, "pruner"),
    ("seed", {**BASE, "seed": 1}, "sampler_seed"),
    ("start", {**BASE, "start": [{"train.lr": 2}]}, "start"),
]


def _job(tmp_path: Path, name: str, tune: dict):
    spec = yaml.safe_load((REPO / "ablations" / "experiments.yaml").read_text())
    spec["experiments"]["table2"]["tune"] = tune
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    opts = SweepOptions("table2", protocol="smoke", results=tmp_path / "res",
                        variants=["alternating"], experiments_file=str(path))  # fmt: skip
    return make_job(opts, 2, check_data=False)


@pytest.mark.parametrize(("what", "tune", "key"), CHANGES, ids=[c[0] for c in CHANGES])
def test_a_changed_search_is_refused_naming_what_changed(tmp_path, what, tune, key):
    job = _job(tmp_path, "base", BASE)
    study = optuna.create_study(study_name="table2@smoke/tune/alternating")  # in memory
    stamp(study, job.setting("alternating"))  # the first worker stamps it
    stamp(study, _job(tmp_path, "same", BASE).setting("alternating"))  # the same search: fine
    with pytest.raises(TuneError, match=f"another setting .*{key} "):
        stamp(study, _job(tmp_path, what, tune).setting("alternating"))


def test_sweep_tuned_refuses_a_study_of_another_search(tmp_path):
    job = _job(tmp_path, "base", BASE)
    study, lock = open_tune_study(job.sweep.place, "alternating", "none", 1, 0)  # the journal
    lock.close()
    stamp(study, job.setting("alternating"))
    other = _job(tmp_path, "space", CHANGES[0][1])
    assert other.sweep.exp_dir == job.sweep.exp_dir
    with pytest.raises(TuneError, match="was tuned with another setting .*space"):
        load_tuned(other.sweep)
