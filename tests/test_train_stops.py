"""Where a run stops, and what its record says then (issue 34 items 5 and 7).

- A stop request (Ctrl-C) is honoured at the next step boundary: after an epoch's last step
  the run checkpoints *before* the validation pass, and a request during the pass ends it;
  the resumed run evaluates and ends exactly as the uninterrupted one.
- The budget (``train.max_steps``, ``train.time_limit_s``) is not science: the fingerprint
  ignores it, a checkpoint resumes under a new one, and a run it stops before the planned
  last step is TRUNCATED (completed epochs counted, not started ones).
- An interrupted record states the steps and whole epochs done at the interruption.
"""

from __future__ import annotations

import csv
import json

import pytest

from ablations.schema.catalog import load_catalog
from ablations.schema.config import apply, science
from ablations.schema.record import fingerprint
from ablations.train import Interrupted, epoch, train

pytestmark = pytest.mark.usefixtures("one_thread")
REAL_STEP, REAL_EVALUATE = epoch.train_step, epoch.evaluate


def _cfg(**train_over):
    cat = load_catalog()
    cfg = cat.experiment("table2").config_for(cat.protocol("smoke"), "alternating", 0)
    over = {"data": {"train_samples": 64, "val_samples": 32, "img_size": 16}}
    return apply(cfg, {**over, "train": {"batch_size": 16, "epochs": 2, **train_over}}, "t")


def _metrics(run_dir):
    keep = ("epoch", "step", "lr", "train_loss", "val_loss", "val_top1", "val_top5")
    return [{k: r[k] for k in keep} for r in csv.DictReader(open(run_dir / "metrics.csv"))]


def _result(run_dir) -> dict:
    return json.loads((run_dir / "result.json").read_text())


class Probe:
    """Counts the optimiser steps and validation passes that start; ``stop`` becomes True
    after ``after_steps`` steps or, with ``in_eval``, once a validation pass has begun."""

    def __init__(self, monkeypatch, after_steps: int | None = None, in_eval: bool = False):
        self.steps = self.evals = 0
        self.after_steps, self.in_eval = after_steps, in_eval
        monkeypatch.setattr(epoch, "train_step", self._step)
        monkeypatch.setattr(epoch, "evaluate", self._evaluate)

    def _step(self, *args, **kwargs):
        self.steps += 1
        return REAL_STEP(*args, **kwargs)

    def _evaluate(self, *args, **kwargs):
        self.evals += 1
        return REAL_EVALUATE(*args, **kwargs)

    def stop(self) -> bool:
        if self.in_eval:
            return self.evals > 0
        return self.after_steps is not None and self.steps >= self.after_steps


def _full(tmp_path):
    run = tmp_path / "full"
    return train(_cfg(), run).to_dict(), _metrics(run)


def test_stop_after_an_epochs_last_step_skips_its_validation_pass(tmp_path, monkeypatch):
    full, full_rows = _full(tmp_path)
    probe = Probe(monkeypatch, after_steps=4)  # 4 steps an epoch: asked during the last one
    run = tmp_path / "cut"
    with pytest.raises(Interrupted, match="interrupted at epoch 0, step 4"):
        train(_cfg(), run, should_stop=probe.stop)
    assert probe.evals == 0  # stopped before the validation pass, not after it
    stopped = _result(run)
    assert stopped["state"] == "INTERRUPTED"
    assert (stopped["steps_done"], stopped["epochs_done"]) == (4, 1)
    resumed = train(_cfg(), run).to_dict()
    assert resumed["resumed_from"] == {"epoch": 0, "step": 4, "global": 4}
    assert probe.steps == 8  # the resumed run trained only epoch 2's four steps
    for key in ("top1", "top5", "val_loss"):
        assert resumed[key] == pytest.approx(full[key], abs=1e-6), key
    assert _metrics(run) == full_rows  # epoch 1's row: evaluated by the resumed run


def test_stop_during_the_validation_pass_ends_it(tmp_path, monkeypatch):
    full, full_rows = _full(tmp_path)
    probe = Probe(monkeypatch, in_eval=True)
    run = tmp_path / "cut"
    with pytest.raises(Interrupted, match="interrupted at epoch 0, step 4"):
        train(_cfg(), run, should_stop=probe.stop)
    assert probe.steps == 4 and probe.evals == 1
    assert _metrics(run) == []  # no row from an unfinished pass
    resumed = train(_cfg(), run).to_dict()
    assert resumed["resumed_from"] == {"epoch": 0, "step": 4, "global": 4}
    assert resumed["top1"] == pytest.approx(full["top1"], abs=1e-6)
    assert _metrics(run) == full_rows


def test_max_steps_7_of_8_is_truncated(tmp_path):
    # Counting epochs started (2 of 2) instead of completed (1) would call this COMPLETE.
    rec = train(_cfg(max_steps=7), tmp_path).to_dict()
    assert rec["state"] == "TRUNCATED" and (rec["steps_done"], rec["epochs_done"]) == (7, 1)
    reason = "truncated: train.max_steps=7 reached after 1 of 2 epochs (7 steps)"
    assert rec["fail_reason"] == reason
    rows = _metrics(tmp_path)  # epoch 1, then the cut epoch evaluated at step 7
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "4"), ("2", "7")]


def test_the_budget_is_not_science_and_resumes(tmp_path, monkeypatch):
    plain = science(_cfg())
    for budget in ({"max_steps": 7}, {"time_limit_s": 30.0}):
        assert science(_cfg(**budget)) == plain, budget
    # Records written before the budget left the science part hashed it as null.
    assert fingerprint({**plain, "train.max_steps": None, "train.time_limit_s": None}) == (
        fingerprint(plain)
    )
    full, full_rows = _full(tmp_path)
    run = tmp_path / "cut"
    with pytest.raises(Interrupted):
        train(_cfg(), run, should_stop=Probe(monkeypatch, after_steps=6).stop)
    budget = train(_cfg(max_steps=7), run).to_dict()  # a budget added: resumes at step 6
    assert budget["resumed_from"]["global"] == 6 and budget["state"] == "TRUNCATED"
    assert budget["steps_done"] == 7
    done = train(_cfg(), run).to_dict()  # the budget lifted: resumes at the exact step 7
    assert done["resumed_from"] == {"epoch": 1, "step": 3, "global": 7}
    assert done["state"] == "COMPLETE" and done["steps_done"] == 8
    for key in ("top1", "top5", "val_loss"):
        assert done[key] == pytest.approx(full[key], abs=1e-6), key
    assert _metrics(run) == full_rows  # the cut epoch's row replaced by the full one
