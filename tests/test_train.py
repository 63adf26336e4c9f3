"""train(): optimiser groups, schedule, exact resume mid-epoch, NaN, budgets, path errors."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable

import pytest
import torch

from ablations.schema.catalog import load_catalog
from ablations.schema.config import apply
from ablations.schema.record import decode_correct
from ablations.train import Interrupted, PathError, TrialFailed, epoch, train
from ablations.train.optim import WarmupCosine, decays, make_optimizer
from ablations.train.steps import build_model

pytestmark = pytest.mark.usefixtures("one_thread")
REAL_STEP = epoch.train_step


def _cfg(**train):
    cat = load_catalog()
    cfg = cat.experiment("table2").config_for(cat.protocol("smoke"), "alternating", 0)
    over = {"data": {"train_samples": 64, "val_samples": 32, "img_size": 16}}
    return apply(cfg, {**over, "train": {"batch_size": 16, "epochs": 2, **train}}, "test")


def test_no_weight_decay_on_biases_norms_skip_and_embeddings():
    model = build_model(apply(_cfg(), {"model": {"pooling": "middle_cls"}}, "t"), 4)
    no_decay = {n for n, p in model.named_parameters() if not decays(n, p)}
    for name in ("pos_embed", "cls_token", "patch_embed.bias", "norm.weight", "head.bias",
                 "blocks.0.layer.gate_bias", "blocks.0.layer.skip", "blocks.0.layer.norm_weight",
                 "blocks.0.layer.conv_bias"):  # fmt: skip
        assert name in no_decay, name
    for name in ("blocks.0.layer.proj_up.weight", "blocks.0.layer.qk_weight", "head.weight"):
        assert name not in no_decay, name
    tc = _cfg().train
    opt = make_optimizer(model, tc)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert opt.param_groups[0]["lr"] == pytest.approx(tc.lr * tc.batch_size / 1024)


def test_warmup_then_cosine_to_floor():
    f = WarmupCosine(warmup_steps=4, total_steps=20, floor=0.01)
    assert [f(i) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0) and f(19) > 0.01 and f(20) == pytest.approx(0.01)
    assert all(f(i) >= f(i + 1) for i in range(4, 25))


def _metrics(run_dir):
    keep = ("epoch", "step", "lr", "train_loss", "val_loss", "val_top1", "val_top5")
    return [{k: r[k] for k in keep} for r in csv.DictReader(open(run_dir / "metrics.csv"))]


def _stop_after(steps: int, monkeypatch) -> Callable[[], bool]:
    """A stop request raised once ``steps`` optimiser steps are done (counted in train_step)."""
    done = {"n": 0}

    def counted(*args, **kwargs):
        done["n"] += 1
        return REAL_STEP(*args, **kwargs)

    monkeypatch.setattr(epoch, "train_step", counted)
    return lambda: done["n"] >= steps


def test_interrupt_mid_epoch_then_resume_is_exact(tmp_path, monkeypatch):
    full = train(_cfg(), tmp_path / "full").to_dict()
    run = tmp_path / "cut"
    with pytest.raises(Interrupted, match="interrupted at epoch 1, step 2"):
        train(_cfg(), run, should_stop=_stop_after(6, monkeypatch))  # 4 steps an epoch
    stopped = json.loads((run / "result.json").read_text())
    assert stopped["state"] == "INTERRUPTED" and stopped["fail_reason"] == "interrupted"
    assert stopped["steps_done"] == 6 and stopped["epochs_done"] == 1  # issue 34: not 0
    assert (run / "checkpoint.pt").exists() and not list(run.glob(".checkpoint.pt.*"))
    resumed = train(_cfg(), run).to_dict()
    assert resumed["resumed_from"] == {"epoch": 1, "step": 2, "global": 6}
    assert stopped["resumes"] == 0 and resumed["resumes"] == 1  # counted once, in the record
    for key in ("top1", "top5", "val_loss"):
        assert resumed[key] == pytest.approx(full[key], abs=1e-6)
    assert _metrics(run) == _metrics(tmp_path / "full")
    assert resumed["state"] == "COMPLETE" and resumed["epochs_done"] == 2


def test_nan_loss_fails_the_run_with_its_reason(tmp_path):
    with pytest.raises(TrialFailed, match=r"non-finite loss \(nan\) at step 3"):
        train(_cfg(inject_nan_at_step=3), tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["state"] == "FAIL" and "non-finite loss" in result["fail_reason"]


def test_max_steps_stops_early_and_still_evaluates(tmp_path):
    result = train(_cfg(max_steps=3), tmp_path).to_dict()
    assert result["state"] == "TRUNCATED" and result["steps_done"] == 3  # 4 steps an epoch
    assert result["epochs_done"] == 0  # whole epochs only: the first was cut at step 3
    assert (
        result["fail_reason"]
        == "truncated: train.max_steps=3 reached after 0 of 2 epochs (3 steps)"
    )
    assert 0 < result["train_step_time_s"] <= result["train_time_s"]
    assert result["top1"] is not None and math.isfinite(result["val_loss"])
    assert result["params"] > 0 and result["flops"] > 0 and result["img_per_s"] > 0
    rows = _metrics(tmp_path)
    assert len(rows) == 1 and rows[0]["val_top1"] != ""


def test_a_budget_that_does_not_bind_leaves_the_run_complete(tmp_path):
    result = train(_cfg(max_steps=8, epochs=2), tmp_path).to_dict()  # exactly 2 x 4 steps
    assert result["state"] == "COMPLETE" and result["fail_reason"] is None
    assert result["epochs_done"] == 2 and result["steps_done"] == 8


def test_unwritable_run_dir_names_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError) as err:
        train(_cfg(), blocker / "run")
    assert f"cannot create {blocker / 'run'}" in str(err.value)


def test_path_error_message():
    from ablations.schema.files import atomic_write

    with pytest.raises(PathError, match="cannot write /proc/nope/x.json"):
        atomic_write(__import__("pathlib").Path("/proc/nope/x.json"), "{}")


def test_record_holds_per_image_correctness_and_load(tmp_path):
    rec = train(_cfg(epochs=1), tmp_path)  # a complete run: its last evaluation
    correct = decode_correct(rec.val_correct)
    assert correct is not None and correct.size == rec.val_images
    assert 100.0 * correct.mean() == pytest.approx(rec.top1)  # the floor's source is the top-1
    assert rec.load["cpus"] == os.cpu_count() and rec.load["concurrent_trials"] == 0
    assert "loadavg_1m_start" in rec.load and "loadavg_1m_end" in rec.load
    assert rec.load["loadavg_1m_samples"] == 3  # start, the one epoch's end, end
    assert rec.load["threads"] == torch.get_num_threads() and rec.load["loadavg_1m_mean"] >= 0
