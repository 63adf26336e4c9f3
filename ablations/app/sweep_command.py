"""The ``sweep`` command: early checks, signals, DDP set-up, local worker processes,
runs.csv, the report and the exit code at the end (0 every point of the command's grid
COMPLETE or TRUNCATED by the budget asked for, 1 any point of it FAIL, MISSING or left
INTERRUPTED / WAITING, 130 interrupted), with a line naming those points and the command
that recovers them.

Ctrl-C / SIGTERM: the first one stops every worker at its next step boundary (checkpoint,
trial marked FAIL "interrupted", re-enqueued by the next ``sweep``, which resumes it); a
second one aborts at once. Spawned workers run in their own session so that a terminal's
Ctrl-C reaches them once, forwarded by the parent.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ablations.app.cli_args import sweep_command_line
from ablations.app.progress import make_progress
from ablations.report import build_report, write_index
from ablations.schema import imports
from ablations.sweep import checks, rows, spec, worker
from ablations.sweep.plan import model_notes
from ablations.train import trackers
from ablations.train.runtime import init_distributed

log = logging.getLogger("vil-ablate.sweep")


def install_stop(children: list[subprocess.Popen]) -> threading.Event:
    """SIGINT/SIGTERM -> stop at the next step boundary (forwarded to spawned workers)."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping at the next step boundary (again to abort)", file=sys.stderr, flush=True)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _threads(processes: int) -> int:
    """CPU threads per process so that local processes do not oversubscribe the cores."""
    if os.environ.get("OMP_NUM_THREADS"):
        return int(os.environ["OMP_NUM_THREADS"])
    return max(1, (os.cpu_count() or 1) // max(processes, 1))


def child_argv(argv: list[str]) -> list[str]:
    """This command's arguments for a spawned worker: one worker, no --rerun, no report, and
    the parent's imports (``imports.child_argv``: files as absolute paths)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--workers", imports.FLAG):
            skip = True
            continue
        if a.startswith(("--workers=", f"{imports.FLAG}=")) or a in ("--rerun", "--retry-failed"):
            continue
        out.append(a)
    return [sys.executable, "-m", "ablations.app.cli", *out, *imports.child_argv(),
            "--workers", "1", "--child", "--plain"]  # fmt: skip


def spawn(s: spec.Sweep, n: int, argv: list[str], threads: int) -> list[subprocess.Popen]:
    """Start ``n`` extra worker processes, logging to <exp>/logs/worker-<i>.log."""
    logs = s.exp_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    procs = []
    for i in range(1, n + 1):
        with open(logs / f"worker-{i}.log", "a") as out:
            procs.append(subprocess.Popen(child_argv(argv), stdout=out, stderr=subprocess.STDOUT,
                                          env=env, start_new_session=True))  # fmt: skip
    return procs


def run(s: spec.Sweep, args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Run the sweep command; returns the exit code (0, 1 points not done, 130 interrupted)."""
    distributed = init_distributed()
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    torch.set_num_threads(_threads(max(args.workers, 1) * local))
    children: list[subprocess.Popen] = []
    stop = install_stop(children)
    if rank == 0 and not args.child:
        checks.check_all(s)  # before any folder exists: a wrong setting leaves nothing behind
        for note in model_notes(s):
            log.warning("%s", note)
        spec.check_records(s)
        spec.prepare(s)
        study, lock = worker.open_study(s)
        worker.enqueue(s, study, lock, initial=True)
        lock.close()
    if distributed:
        dist.barrier()
    if rank == 0 and not args.child and args.workers > 1 and not distributed:
        argv = list(sys.argv[1:] if argv is None else argv)
        children.extend(spawn(s, args.workers - 1, argv, _threads(args.workers)))
    progress = make_progress(len(s.grid), plain=True if args.plain else None) if rank == 0 else None
    try:
        outcome = worker.run_worker(s, stop, progress, initial=args.child)
    finally:
        if progress is not None:
            progress.close()
    for child in children:
        child.wait()
    if distributed:
        dist.destroy_process_group()
    if rank != 0 or args.child:
        return 130 if outcome == "interrupted" or stop.is_set() else 0
    not_done = finish(s, args)
    if outcome == "interrupted" or stop.is_set():
        return 130
    return 1 if not_done else 0


def finish(s: spec.Sweep, args: argparse.Namespace) -> int:
    """runs.csv, the report (its failure never loses results), where everything went, and one
    line per point of this command's grid that is not done; returns how many there are."""
    study = worker.load_study(s)
    runs = rows.write_runs(s.exp_dir, study)
    records = rows.collect(s.exp_dir, study)
    counts = rows.counts(records)
    print(f"{s.study_name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"results: {s.exp_dir}")
    print(f"runs: {runs}")
    if not args.no_report:
        try:
            include = getattr(args, "include_truncated", False)
            report = build_report(s.exp_dir, include_truncated=include)
            print(f"report: {report}")
            print(f"html: {report.with_suffix('.html')}")
            dirs = [s.exp_dir / p.run_dir for p in s.grid]  # their MLflow runs get the report
            trackers.log_report(dirs, [report, report.parent / "figures"])
            print(f"index: {write_index(Path(s.opts.results))}")
        except Exception as e:  # the results are on disk already; say what failed
            log.error("report failed (results are safe in %s): %s: %s", s.exp_dir,
                      type(e).__name__, e)  # fmt: skip
    return _not_done_lines(s, args, records)


DONE = ("COMPLETE", "TRUNCATED")  # TRUNCATED: stopped by the budget the command gave it


def _not_done_lines(s: spec.Sweep, args: argparse.Namespace, records: list) -> int:
    """One line per point of this command's grid that is not done, and the command that
    recovers them; returns how many there are."""
    mine = {(p.variant, p.seed): p for p in s.grid}
    by_point = {r.point: r for r in records}
    for r in records:
        if r.point in mine and r.state == "TRUNCATED":
            print(f"TRUNCATED {r.variant}-s{r.seed}: {r.fail_reason}; not a result (left out "
                  "of the report); the next sweep resumes it from its checkpoint",
                  file=sys.stderr)  # fmt: skip
    bad = []
    for point, p in mine.items():
        r = by_point.get(point)
        state = r.state if r is not None else "MISSING"
        if state in DONE:
            continue
        shown = "FAILED" if state == "FAIL" else state
        reason = " ".join(str((r.fail_reason if r else "") or _why(state)).split())[:300]
        print(f"{shown} {p.name}: {reason}", file=sys.stderr)
        bad.append((p.name, state))
    others = [f"{r.variant}-s{r.seed} {r.state}" for r in records
              if r.point not in mine and r.state not in DONE]  # fmt: skip
    if others:
        print(f"not named by this command, left as they were: {', '.join(others)}",
              file=sys.stderr)  # fmt: skip
    if bad:
        extra = ["--retry-failed"] if any(state == "FAIL" for _, state in bad) else []
        names = ", ".join(f"{n} {st}" for n, st in bad)
        again = sweep_command_line(args, s.protocol, *extra)
        print(f"{len(bad)} point(s) of this command's grid not complete ({names}); "
              f"recover them with: {again}", file=sys.stderr)  # fmt: skip
    return len(bad)


def _why(state: str) -> str:
    return {"INTERRUPTED": "stopped; the next sweep resumes it from its checkpoint",
            "WAITING": "not started; the next sweep trains it",
            "RUNNING": "still running in another worker",
            "MISSING": "no trial and no run record; the next sweep trains it"}.get(
        state, "no reason recorded")  # fmt: skip
