"""Every benchmark script runs in its --quick mode, prints its table and writes valid JSON.

Nothing here asserts a time: the scripts' figures depend on the machine and its load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A stand-in for the NX-AI/vision-lstm checkout: same constructor, trivial model. It only
# exercises the --reference-path import path; the real comparison needs the real checkout.
FAKE_REFERENCE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class VisionLSTM(nn.Module):
        def __init__(self, dim, depth, input_shape, patch_size, output_shape, **kwargs):
            super().__init__()
            self.embed = nn.Conv2d(input_shape[0], dim, patch_size, patch_size)
            self.head = nn.Linear(dim, output_shape[0])

        def forward(self, x):
            return self.head(self.embed(x).mean((2, 3)))
    """
)


def run_script(module: str, out: Path, *extra: str) -> str:
    """Run ``python -m module --quick --out out`` from the repo root; return its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "VIL_REFERENCE_PATH"}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads crawl on a busy CPU
    proc = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--device", "cpu", "--out", str(out), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def load(out: Path, benchmark: str) -> dict:
    data = json.loads(out.read_text())
    assert data["benchmark"] == benchmark
    env = data["environment"]
    assert env["device"] == "cpu" and env["torch"] and env["date_utc"]
    return data


def test_bench_model_quick(tmp_path: Path) -> None:
    out = tmp_path / "model.json"
    stdout = run_script("benchmarks.bench_model", out, "--op-split")
    assert "throughput" in stdout and "train-step time split" in stdout
    assert "timed operator by operator" in stdout
    data = load(out, "model")
    rows = data["results"]
    assert [r["traversal"] for r in rows] == ["alternating", "quad"]
    for r in rows:
        assert r["train_images_per_s"] > 0 and r["infer_images_per_s"] > 0
        assert r["train"]["peak_mib"] is not None
        split = r["breakdown_train"]["seconds"]
        assert {"cell", "proj_up_down", "qkv_headwise", "gates", "conv", "rest"} <= set(split)
        assert r["op_split_train"]["products_s"] > 0 and r["op_split_train"]["other_s"] > 0


def test_bench_mlstm_quick(tmp_path: Path) -> None:
    out = tmp_path / "mlstm.json"
    stdout = run_script("benchmarks.bench_mlstm", out)
    assert "mLSTM cell fwd+bwd" in stdout and "time(S=256) / time(S=64)" in stdout
    assert "recurrent runs only up to S=128" in stdout
    data = load(out, "mlstm")
    assert [r["length"] for r in data["results"]] == [64, 128, 256]
    for r in data["results"]:
        assert r["parallel"]["median_s"] > 0 and r["chunkwise"]["median_s"] > 0
        assert r["auto_picks"] in ("parallel", "chunkwise")
    assert "chunkwise" in data["scaling_ratios"]


def test_bench_reference_quick(tmp_path: Path) -> None:
    fake = tmp_path / "fake_reference" / "vision_lstm"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "vision_lstm.py").write_text(FAKE_REFERENCE)
    out = tmp_path / "reference.json"
    stdout = run_script("benchmarks.bench_reference", out, "--reference-path", str(fake.parent))
    assert "(a) mLSTM cell" in stdout and "matmul bound" in stdout
    assert "ours / reference" in stdout
    data = load(out, "reference")
    assert data["cells"] and data["model"]["ours"]["images_per_s"] > 0
    assert data["model"]["speedup_vs_reference"] > 0
    assert "where our step's time goes" in stdout
    split = data["model"]["ours"]["op_split"]
    assert split["products_s"] > 0 and split["products_gflop"] > 0 and split["other_s"] > 0
    for row in data["cells"]:  # a missing peer package is reported, never an error
        assert "skipped" in row or row["max_rel_diff_vs_our_parallel"] < 1e-4


def test_reference_checkout_missing_is_a_skip_with_reason(tmp_path: Path) -> None:
    from benchmarks.reference_model import load_reference

    cls, why = load_reference(str(tmp_path / "nowhere"))
    assert cls is None and "vision_lstm.py" in why
    cls, why = load_reference(None) if not os.environ.get("VIL_REFERENCE_PATH") else (None, "x")
    assert cls is None and why


def test_bench_sweep_scaling_quick(tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    proc_out = run_script("benchmarks.bench_sweep_scaling", out, "--keep", str(tmp_path / "s"))
    assert "Sweep table2 / protocol smoke" in proc_out
    data = json.loads(out.read_text())
    assert data["benchmark"] == "sweep_scaling"
    assert data["results"][0]["workers"] == 1 and data["results"][0]["trials"] == 1
    assert "Storage cost per trial" in proc_out
    store = data["storage"][0]  # every enqueued trial claimed exactly once
    assert store["workers"] == 1 and store["trials"] == 10 and store["storage_ms_per_trial"] > 0


def test_storage_overhead_workers_share_one_queue(tmp_path: Path) -> None:
    """Two workers on one journal drain the queue: every trial COMPLETE, each claimed once."""
    import optuna

    from benchmarks import storage_overhead

    row = storage_overhead.measure(2, 12, tmp_path)
    assert row["workers"] == 2 and row["trials"] == 12
    study = storage_overhead._open(None, tmp_path, row["study"])
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [optuna.trial.TrialState.COMPLETE] * 12
    assert len({t.user_attrs["worker"] for t in study.get_trials(deepcopy=False)}) <= 2


def test_op_split_counts_product_flops_and_times_each_operator() -> None:
    """FLOPs per product kind (the added tensor of addmm is skipped), and one timed step of
    known products recovers their FLOPs and names the other operators."""
    import torch

    from benchmarks import op_split

    a, b, c = torch.randn(64, 32), torch.randn(32, 16), torch.randn(8, 16, 4)
    assert op_split.product_flops("aten.mm.default", (a, b)) == 2 * 64 * 32 * 16
    assert op_split.product_flops("aten.addmm.default", (b[0], a, b)) == 2 * 64 * 32 * 16
    assert op_split.product_flops("aten.bmm.default", (c.transpose(1, 2), c)) == 8 * 2 * 4 * 16 * 4
    assert op_split.product_flops("aten.add.Tensor", (a, a)) == 0.0
    sp = op_split.split(lambda: (a @ b).relu().view(8, 8, 16).bmm(c))
    assert sp["products_gflop"] * 1e9 == 2 * 64 * 32 * 16 + 8 * 2 * 8 * 16 * 4
    assert "aten.relu.default" in sp["other_largest_s"]
    assert 0 < sp["products_s"] + sp["other_s"] <= sp["step_s"]
