"""The ``submit`` command: a sweep's workers as submitit jobs (a SLURM job array, or local
processes with ``--cluster local``). Each job is one sweep worker over K nodes x G GPUs on the
shared study (ablations/app/submit_task.py); this command checks, enqueues the grid, submits,
prints the job ids, the log folder and the ``status`` command, and returns; ``--wait`` blocks
until the jobs end and exits as ``sweep`` would (0, 1 failed or unfinished points, 130).

Bad input (submitit missing, a storage or results folder the tasks cannot reach, an unknown
partition or submitit parameter, a malformed --time) is one line, exit 2, before anything is
submitted or written (ablations/app/submit_checks.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import submitit

from ablations.app import submit_checks as checks_here
from ablations.app.submit_args import status_argv, task_argv
from ablations.app.submit_task import SweepTask
from ablations.app.sweep_command import finish
from ablations.data import DataConfigError
from ablations.schema.device import check_device
from ablations.schema.errors import ConfigError
from ablations.study.storage import StorageError, check_storage
from ablations.sweep import checks, spec, worker
from ablations.sweep.plan import format_plan, model_notes, plan


def check(s: spec.Sweep, args: argparse.Namespace) -> tuple[checks_here.Plan, dict[str, Any]]:
    """Every check before submission: the plan, and the data summaries (raises ConfigError)."""
    p = checks_here.make_plan(args)
    checks_here.check_storage_reach(s.opts.storage, Path(s.opts.results), p.cluster, args.nodes,
                                    args.shared_fs)  # fmt: skip
    try:
        check_storage(s.opts.storage)
    except StorageError as e:  # the workers could not reach it either
        raise ConfigError(str(e)) from None
    for point, cfg in s.configs.items():  # the device's form only: the GPUs are the nodes'
        check_device(cfg.train.device, available=p.cluster == "local")
        if not args.dry_run:
            try:
                cfg.data.validate()
            except DataConfigError as e:
                raise ConfigError(f"{s.catalog.source}: {s.exp.name}/{point.name}: {e}") from None
    checks.check_trackers(s)
    summaries = checks.check_data(s) if not args.dry_run or checks.data_checkable(s) else {}
    if p.cluster == "slurm":
        checks_here.check_slurm_here()
        note = checks_here.check_partition(args.partition)
        if note:
            print(f"warning: {note}", file=sys.stderr)
    return p, summaries


def executor(p: checks_here.Plan, folder: Path) -> submitit.AutoExecutor:
    """submitit's executor with the plan's parameters (a refused one: ConfigError)."""
    ex = submitit.AutoExecutor(folder=folder, cluster=p.cluster)
    try:
        ex.update_parameters(**p.params)
    except (NameError, ValueError, TypeError, AssertionError) as e:
        raise checks_here.executor_error(e) from None
    return ex


def folder_of(s: spec.Sweep, args: argparse.Namespace) -> Path:
    """submitit's log folder (its files are named by job id, ``<array>_<index>`` in an
    array, and task: ``<job>_<task>_log.out``)."""
    return (Path(args.folder) if args.folder else s.exp_dir / "submitit").absolute()


def run(s: spec.Sweep, args: argparse.Namespace, argv: list[str]) -> int:
    """Check, enqueue, submit; with --wait, block and return the sweep's exit code."""
    p, summaries = check(s, args)
    if args.dry_run:
        return dry_run(s, args, p, summaries)
    spec.check_records(s)
    ex = executor(p, folder_of(s, args))  # before any folder: a refused parameter writes nothing
    for note in model_notes(s):
        print(f"warning: {note}", file=sys.stderr)
    spec.prepare(s)
    study, lock = worker.open_study(s)
    worker.enqueue(s, study, lock, initial=True)
    lock.close()
    task = SweepTask(task_argv(argv), os.getcwd())
    jobs = ex.map_array(task, list(range(p.workers)))
    _announce(s, p, jobs, folder_of(s, args), argv)
    return wait(s, args, jobs) if args.wait else 0


def _announce(s: spec.Sweep, p: checks_here.Plan, jobs: list, folder: Path, argv: list) -> None:
    ids = ", ".join(j.job_id for j in jobs)
    print(f"{s.study_name}: {len(s.grid)} points, {p.workers} worker(s) x {p.ranks} rank(s) "
          f"submitted ({p.cluster}): {ids}")  # fmt: skip
    print(f"logs: {folder}")
    print(f"watch: vil-ablate {shlex.join(status_argv(argv))}")


def wait(s: spec.Sweep, args: argparse.Namespace, jobs: list) -> int:
    """Block until every job has ended; then runs.csv, the report and the exit code."""
    try:
        for job in jobs:
            job.wait()
    except KeyboardInterrupt:
        print("vil-ablate: stopped waiting; the jobs go on (see `status`)", file=sys.stderr)
        return 130
    crashed = _crashed(jobs)
    failed = finish(s, args)
    counts = worker.grid_counts(s, worker.load_study(s))
    left = sum(n for state, n in counts.items() if state not in ("COMPLETE", "FAIL"))
    if left:
        print(f"{left} point(s) not finished when the jobs ended ({counts}); submit again to "
              "go on", file=sys.stderr)  # fmt: skip
    return 1 if failed or left or crashed else 0


def _crashed(jobs: list) -> int:
    """One line per job whose worker crashed (naming its log); returns how many."""
    n = 0
    for job in jobs:
        exc = job.exception()
        if exc is not None:
            n += 1
            # the exception's own line of the trace ("module.Name: message"), not the paths
            said = [ln for ln in str(exc).splitlines() if re.match(r"[\w.]+: \S", ln)]
            said = said[-1].split(": ", 1)[1] if said else type(exc).__name__
            print(f"job {job.job_id} failed: {said[:300]}; log: {job.paths.stderr}",
                  file=sys.stderr)  # fmt: skip
    return n


def dry_run(s: spec.Sweep, args: argparse.Namespace, p: checks_here.Plan,
            summaries: dict[str, Any]) -> int:  # fmt: skip
    """The submitit parameters (sbatch's, on SLURM) and the grid; nothing is written."""
    params = _resolved_params(p)
    rows = plan(s, summaries)
    shape = {"cluster": p.cluster, "workers": p.workers, "ranks_per_worker": p.ranks}
    if args.json:
        print(json.dumps({**shape, "parameters": params, "trials": rows}, indent=2, default=str))
        return 0
    print(
        f"submitit {p.cluster} parameters ({p.workers} worker job(s) of {p.ranks} DDP "
        "rank(s) each):"
    )
    for key in sorted(params):
        print(f"  {key} = {params[key]}")
    print(format_plan(rows, f"{s.study_name}: {len(rows)} trials -> {s.exp_dir}"))
    return 0


def _resolved_params(p: checks_here.Plan) -> dict[str, Any]:
    """What submitit would submit with: its executor's parameters (SLURM names on SLURM),
    set on a throw-away executor in a folder that is never created (the local executor
    would create its folder: its parameters are the plan's)."""
    if p.cluster == "local":
        return dict(p.params)
    ex = submitit.AutoExecutor(folder=Path(os.devnull) / "never", cluster=p.cluster)
    try:
        ex.update_parameters(**p.params)
    except (NameError, ValueError, TypeError, AssertionError) as e:
        raise checks_here.executor_error(e) from None
    out = dict(ex.parameters)
    if p.cluster == "slurm" and p.workers > 1:
        out["array"] = f"0-{p.workers - 1}"
    return out
