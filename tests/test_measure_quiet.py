"""--dry-run --measure: no profiler noise on stderr, a warning on a busy CPU (the doctor's
check), and the doctor's commit is the runs' git rev from any folder."""

from __future__ import annotations

import os

import pytest
import torch

from ablations.app.cli import main
from ablations.train import instruments as timing
from ablations.train.runtime import git_revision
from benchmarks import common


def test_profiler_noise_is_held_back_and_real_lines_pass(capfd):
    def fn() -> None:
        os.write(2, b"USDT:2026 SyncActivityProfilerHandler.cpp:39] profiler_start\n")
        os.write(2, b"a real warning of the profiled code\n")
        torch.ones(256, 256).sum()

    assert timing.profiled_peak_mib(fn) > 0
    err = capfd.readouterr().err
    assert "a real warning of the profiled code" in err
    assert "USDT" not in err and "gpuGetDeviceCount" not in err, err


def _load(monkeypatch, load: float, cores: int = 2) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)


def test_busy_cpu_check_compares_load_with_cores(monkeypatch):
    cpu = torch.device("cpu")
    _load(monkeypatch, 5.5)
    assert "load average 5.50 on 2 cores" in common.cpu_busy(cpu)
    assert common.environment(cpu)["cpu_looks_shared"]  # the doctor's header says so too
    _load(monkeypatch, 0.3)
    assert common.cpu_busy(cpu) is None
    _load(monkeypatch, 5.5, cores=16)  # 2 of 16 cores used here: room left
    assert common.cpu_busy(cpu) is None
    assert common.cpu_busy(torch.device("cuda")) is None


def test_dry_run_measure_warns_on_a_busy_machine(monkeypatch, capsys):
    from ablations.sweep import plan

    fake = {"img_per_s": 100.0, "img_per_s_min": 99.0, "img_per_s_max": 101.0, "device": "cpu",
            "suggested_micro_batch": 32, "warmup_steps": 2}  # fmt: skip
    monkeypatch.setattr(plan, "measure_models", lambda models, repeats: [dict(fake)])
    args = ["sweep", "table2", "--protocol", "smoke", "--dry-run", "--measure", "--device",
            "cpu", "--variants", "uni"]  # fmt: skip
    _load(monkeypatch, 5.5)
    assert main(args) == 0
    assert "warning: load average 5.50 on 2 cores" in capsys.readouterr().out
    _load(monkeypatch, 0.2)
    assert main(args) == 0
    assert "warning" not in capsys.readouterr().out


def test_doctor_commit_is_the_runs_git_rev_from_any_folder(tmp_path, monkeypatch):
    rev = git_revision()
    if rev is None:
        pytest.skip("not a git checkout: both say unknown")
    monkeypatch.chdir(tmp_path)
    assert timing.environment(torch.device("cpu"))["git_commit"] == rev
