"""Shared pytest set-up: the test tiers, deterministic CPU runs, and where ../shared lives.

Tiers: the files in ``E2E_FILES`` run the command line, spawn processes or train models;
their tests are marked ``e2e`` here (the one place that says so). ``make test-fast`` runs
the rest (``-m "not e2e and not slow"``); ``make test`` (CI) runs everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"

# Test files that run the CLI, subprocesses or training loops (seconds to minutes each).
E2E_FILES = frozenset({
    "test_aug_epochs.py", "test_axes_eval.py", "test_benchmarks.py", "test_calibrate_e2e.py",
    "test_cli.py",
    "test_cli_consistency.py", "test_compare.py", "test_compare_out.py",
    "test_compare_rules.py", "test_confounds.py", "test_dashboard.py", "test_data_bench.py",
    "test_data_download.py",
    "test_demo.py", "test_device_aug.py", "test_doctor.py", "test_dry_run_device.py",
    "test_extending.py", "test_imports.py", "test_init_seed.py", "test_influence.py",
    "test_matching.py",
    "test_measure_quiet.py", "test_priced_classes.py", "test_progress_lines.py",
    "test_provenance.py", "test_recipe_version.py", "test_same_model.py",
    "test_seed_pairing.py", "test_show.py",
    "test_stop_latency.py", "test_sweep.py", "test_sweep_datasets.py", "test_sweep_postgres.py",
    "test_trackers.py", "test_train.py", "test_train_ddp.py", "test_train_device_path.py",
    "test_truncated.py",
    "test_tune.py", "test_tune_postgres.py", "test_tune_stamp.py",
    "test_ddp_shares.py", "test_influence_error.py", "test_measure_warm.py",
    "test_report_html.py", "test_results_folder.py", "test_submit.py", "test_sweep_grid.py",
    "test_train_stops.py",
})  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in E2E_FILES:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """One torch thread for the test: the 2 CPU cores are shared, and CPU numbers repeat."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the checkout; tests that need it skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present (only developers and CI have ../shared)")
    return SHARED
