"""`vil-ablate doctor` in its reduced CPU mode prints its tables and writes JSON + Markdown;
the micro-batch suggestion and the loader verdict. Nothing here asserts a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vil
from ablations.app.doctor_checks import loader_verdict
from ablations.schema.catalog import load_catalog
from ablations.schema.config import apply
from ablations.train.measure import measure_throughput, suggest_micro_batch

ROOT = Path(__file__).resolve().parents[1]


def test_doctor_reduced_mode_runs_every_check(tmp_path: Path) -> None:
    out, md = tmp_path / "doctor.json", tmp_path / "doctor.md"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "ablations.app.cli", "doctor", "--device", "cpu",
           "--out", str(out), "--md", str(md)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for title in ("fixed-batch train steps", "mlstm-kernels vs our parallel form", "DDP", "loader"):
        assert title in proc.stdout, title
    data = json.loads(out.read_text())
    assert data["reduced"] and data["environment"]["device"] == "cpu"
    rows = data["traversals"]
    assert [r["traversal"] for r in rows] == list(vil.TRAVERSALS.names())
    for r in rows:  # the real train step overfits one batch: finite, decreasing loss
        assert r["ok"], r["losses"]
        assert r["train_img_per_s"] > 0 and r["first_step_s"] > 0
    assert data["ddp"].get("ok") or "skipped" in data["ddp"], data["ddp"]
    assert data["kernels"].get("ok") or "skipped" in data["kernels"], data["kernels"]
    assert data["loader"]["img_per_s"] > 0 and data["loader"]["verdict"]
    text = md.read_text()
    assert "CPU figures (reduced mode, not GPU figures)" in text and "| uni |" in text


def test_loader_verdict_names_the_workers_or_gpu_augmentation() -> None:
    assert loader_verdict(900.0, 4, 800.0, 16).startswith("the loader keeps up")
    assert loader_verdict(400.0, 4, 1000.0, 16).startswith("needs 10 workers")
    assert loader_verdict(400.0, 4, 10_000.0, 16).startswith("needs GPU-side augmentation")


def test_suggested_micro_batch_is_the_largest_divisor_that_fits() -> None:
    points = [(8, 1100.0), (32, 1400.0)]  # 1000 MiB fixed + 12.5 MiB per sample
    assert suggest_micro_batch(64, points, budget_mib=1500.0) == 32  # 40 would fit: no divisor
    assert suggest_micro_batch(64, points, budget_mib=1900.0) == 64
    assert suggest_micro_batch(64, points, budget_mib=900.0) == 1


@pytest.mark.parametrize("micro", [None, 4])
def test_measure_throughput_reports_speed_memory_and_a_fitting_micro_batch(micro) -> None:
    torch.set_num_threads(1)
    cat = load_catalog()
    cfg = cat.experiment("table2").config_for(cat.protocol("smoke"), "alternating", 0)
    cfg = apply(cfg, {"data": {"img_size": 16}, "train": {"batch_size": 16, "micro_batch": micro}},
                "t")  # fmt: skip
    m = measure_throughput(cfg, repeats=1)
    assert m["img_per_s"] > 0 and m["peak_mem_mb"] > 0
    assert m["per_rank_batch"] == 16 and m["micro_batch"] == (micro or 16)
    assert 16 % m["suggested_micro_batch"] == 0
