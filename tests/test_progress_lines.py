"""What the progress lines say: no NaN placeholder, 1-based resume epochs, Ctrl-C not 'done'."""

from __future__ import annotations

import io
import threading

import pytest

from ablations.app.progress import PlainProgress
from ablations.schema.catalog import load_catalog
from ablations.schema.config import apply
from ablations.sweep import SweepOptions, resolve, spec, worker
from ablations.train import Interrupted, epoch, train

pytestmark = pytest.mark.usefixtures("one_thread")


SMALL = {"data": {"train_samples": 64, "val_samples": 32, "img_size": 16}}


def _cfg():
    cat = load_catalog()
    cfg = cat.experiment("table2").config_for(cat.protocol("smoke"), "alternating", 0)
    return apply(cfg, {**SMALL, "train": {"batch_size": 16, "log_every": 100}}, "test")


def _progress() -> PlainProgress:
    p = PlainProgress(stream=io.StringIO())
    p.every_s = 0.0  # a line for every step
    return p


def test_no_nan_placeholder_before_the_first_read_and_resume_epoch_is_logged_one(
    tmp_path, monkeypatch
):
    p, done, real_step = _progress(), {"n": 0}, epoch.train_step

    def counted(*args, **kwargs):  # count optimiser steps, not stop polls (polled more often)
        done["n"] += 1
        return real_step(*args, **kwargs)

    monkeypatch.setattr(epoch, "train_step", counted)

    def stop_at_step_6() -> bool:  # 4 steps an epoch: stop at epoch 2, step 2
        return done["n"] >= 6

    with pytest.raises(Interrupted):
        train(_cfg(), tmp_path / "run", p, should_stop=stop_at_step_6)
    first = p.stream.getvalue().splitlines()
    steps = [line for line in first if " step " in line]
    assert steps and "nan" not in "\n".join(first) and " 0 img/s" not in "\n".join(first)
    assert "(loss and img/s at the first read)" in steps[0]  # log_every 100 > 4 steps
    assert "loss " in steps[3] and "img/s" in steps[3]  # read at the epoch's end
    again = _progress()
    train(_cfg(), tmp_path / "run", again)
    lines = again.stream.getvalue().splitlines()
    assert "resuming at epoch 2, step 2" in lines[0], lines[0]
    assert "epoch 2/2 step 3" in lines[1] and "nan" not in "\n".join(lines)


def test_a_trial_stopped_by_ctrl_c_is_not_counted_done(tmp_path):
    opts = SweepOptions(experiment="table2", protocol="smoke", results=tmp_path,
                        variants=["alternating"], overrides=SMALL)  # fmt: skip
    s = resolve(opts)
    spec.prepare(s)
    stop = threading.Event()

    class StopAtFirstStep(PlainProgress):
        def step(self, *args) -> None:
            stop.set()  # what the SIGINT handler does

    shown = StopAtFirstStep(stream=io.StringIO())
    assert worker.run_worker(s, stop, shown) == "interrupted"
    assert "1/1 trials done" not in shown.stream.getvalue() and shown.done == 0
    study, lock = worker.open_study(s)
    lock.close()
    assert worker.grid_counts(s, study) == {"INTERRUPTED": 1}
