"""Sweep scaling: wall time of one experiment grid with 1, 2, ... local worker processes.

    python -m benchmarks.bench_sweep_scaling                    # table2 subset, smoke protocol
    python -m benchmarks.bench_sweep_scaling --workers 1 2 4 --variants uni,alternating,bi,quad
    python -m benchmarks.bench_sweep_scaling --quick            # CI: 1 trial, 1 worker

Each worker count runs the same grid from scratch in its own results folder through the
project's CLI (``vil-ablate sweep``), so Optuna, process start-up and checkpointing are
included. Per trial it reads ``train_time_s`` from the runs' ``result.json``; "overhead" is
wall time x workers / trials minus the mean training time (start-up, Optuna, evaluation
outside the training clock, idle workers at the end of the grid). The storage's own share is
measured apart (benchmarks/storage_overhead.py): the same worker counts drain a queue of
trials that train nothing, on the journal file or on ``--storage URL`` (e.g. PostgreSQL).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import storage_overhead
from benchmarks.common import (
    base_parser,
    environment,
    header_line,
    print_table,
    resolve_device,
    write_json,
)

CLI = "from ablations.app.cli import main; raise SystemExit(main())"


def run_sweep(args, workers: int, results: Path) -> dict[str, Any]:
    """One sweep from scratch with ``workers`` processes; wall time and per-trial results."""
    cmd = [sys.executable, "-c", CLI, "sweep", args.experiment, "--protocol", args.protocol,
           "--variants", args.variants, "--seeds", args.seeds, "--workers", str(workers),
           "--results", str(results), "--device", args.device]  # fmt: skip
    cmd += ["--no-report", "--plain"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise SystemExit(f"sweep with {workers} worker(s) failed ({proc.returncode}):\n{tail}")
    trials = [json.loads(p.read_text()) for p in results.rglob("result.json")]
    train_s = [t["train_time_s"] for t in trials if t.get("train_time_s") is not None]
    mean_train = sum(train_s) / len(train_s) if train_s else float("nan")
    n = len(trials)
    return {
        "workers": workers,
        "trials": n,
        "wall_s": wall,
        "trials_per_min": 60 * n / wall if wall else float("nan"),
        "mean_train_s": mean_train,
        "overhead_s_per_trial": wall * workers / n - mean_train if n else float("nan"),
    }


def bench_storage(args) -> list[dict[str, Any]]:
    """Storage cost per trial at each worker count (fresh study each; nothing trained)."""
    if args.storage_trials <= 0:
        return []
    rows = []
    with tempfile.TemporaryDirectory(prefix="vil-storage-bench-") as tmp:
        for w in args.workers:
            rows.append(storage_overhead.measure(w, args.storage_trials, Path(tmp) / f"w{w}",
                                                 args.storage))  # fmt: skip
    print_table(
        f"Storage cost per trial ({args.storage or 'journal file'}; {args.storage_trials} "
        "trials that train nothing)",
        ["workers", "trials", "wall s", "trials/s", "storage ms / trial / worker"],
        [
            [r["workers"], r["trials"], r["wall_s"], r["trials_per_s"], r["storage_ms_per_trial"]]
            for r in rows
        ],  # fmt: skip
    )
    return rows


def parse_args(argv: list[str] | None = None):
    p = base_parser(__doc__.splitlines()[0], "results/bench_sweep_scaling.json")
    p.add_argument("--experiment", default="table2")
    p.add_argument("--protocol", default="smoke")
    p.add_argument("--variants", default="uni,alternating,bi_shared,quad_alternating")
    p.add_argument("--seeds", default="0")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--timeout", type=int, default=3600, help="seconds per sweep")
    p.add_argument("--keep", default=None, help="keep the sweeps' results under this folder")
    p.add_argument(
        "--storage-trials",
        type=int,
        default=200,
        help="trials per worker count in the storage-overhead phase (0: skip)",
    )
    p.add_argument(
        "--storage", default=None, help="storage URL for that phase (default: a fresh journal file)"
    )
    p.add_argument(
        "--storage-only",
        action="store_true",
        help="skip the sweeps: only measure the storage (e.g. a cluster's database)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.variants, args.workers, args.storage_trials = "alternating", [1], 10
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = resolve_device(args.device)
    args.device = str(device)
    env = environment(device, args.note)
    print(header_line(env))
    rows = [] if args.storage_only else bench_sweeps(args)
    store = bench_storage(args)
    payload = {"benchmark": "sweep_scaling", "environment": env, "settings": vars(args),
               "results": rows, "storage": store}  # fmt: skip
    print(f"wrote {write_json(args.out, payload)}")
    return payload


def bench_sweeps(args) -> list[dict[str, Any]]:
    """The same grid from scratch with each worker count; speed-up over one worker."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="vil-sweep-bench-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        for w in args.workers:
            rows.append(run_sweep(args, w, base / f"workers{w}"))
            print(f"  {w} worker(s): {rows[-1]['wall_s']:.1f} s", flush=True)
    one = next((r for r in rows if r["workers"] == 1), None)
    for r in rows:
        r["speedup"] = one["wall_s"] / r["wall_s"] if one else float("nan")
        r["efficiency"] = r["speedup"] / r["workers"]
    print_table(
        f"Sweep {args.experiment} / protocol {args.protocol} / variants {args.variants}",
        [
            "workers",
            "trials",
            "wall s",
            "trials/min",
            "speedup",
            "efficiency",
            "mean train s",
            "overhead s/trial",
        ],  # fmt: skip
        [
            [
                r["workers"],
                r["trials"],
                r["wall_s"],
                r["trials_per_min"],
                r["speedup"],
                r["efficiency"],
                r["mean_train_s"],
                r["overhead_s_per_trial"],
            ]
            for r in rows
        ],  # fmt: skip
    )
    print("Worker processes share the machine's cores (the harness splits torch threads).")
    return rows


if __name__ == "__main__":
    main()
