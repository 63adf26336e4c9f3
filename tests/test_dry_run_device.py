"""A dry run refuses a device this machine lacks, as the sweep does (one line, exit 2)."""

from __future__ import annotations

import pytest
import torch

from ablations.app.cli import main


@pytest.mark.parametrize("command", ["sweep", "tune"])
def test_dry_run_and_sweep_refuse_a_missing_cuda_alike(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # CPU-only, even on a GPU host
    args = [command, "table2", "--protocol", "smoke", "--variants", "uni", "--device", "cuda",
            "--results", str(tmp_path)]  # fmt: skip
    assert main(args) == 2
    real = capsys.readouterr().err.strip()
    assert main([*args, "--dry-run"]) == 2
    dry = capsys.readouterr().err.strip()
    assert "\n" not in dry and "train.device: 'cuda'" in dry and "is_available() is False" in dry
    assert real.endswith(dry.split("error: ", 1)[1])  # the same reason
    assert not any(tmp_path.iterdir())
    assert main([*args[:-4], "--dry-run"]) == 0  # without --device: auto, planned here
