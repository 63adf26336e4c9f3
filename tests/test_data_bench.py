"""The data benchmark's quick mode runs and writes its JSON (no time is asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_data.py"


def test_bench_data_quick(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_data", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    result = bench.main(["--quick", "--img-size", "32", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["speedup"] == result["speedup"] > 0
    assert saved["train_images"] == 50 and saved["stored_size"] == 36
    assert "images/s" in capsys.readouterr().out
