"""The ``tune`` command: resolve, check, price (--dry-run), spawn local workers, summarise.

Workers share the sweep's storage (journal file by default, --storage URL across machines);
any number of ``tune`` commands on the same storage run N trials per variant in total.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from types import SimpleNamespace
from typing import Any

import torch

from ablations.app import sweep_command as command
from ablations.app.progress import make_progress
from ablations.schema.catalog import load_catalog
from ablations.schema.points import Point
from ablations.study.tune import summary_lines
from ablations.sweep import checks, resolve
from ablations.sweep.plan import format_plan, plan
from ablations.tune.worker import Job, run_worker


def make_job(opts: Any, budget: int | None, check_data: bool = True) -> Job:
    """The tune job: the experiment's variants at its first seed, N trials each."""
    exp = load_catalog(opts.experiments_file).experiment(opts.experiment)
    opts = dataclasses.replace(opts, seeds=[exp.seeds[0]], tuned=False)
    s = resolve(opts, check_data=check_data)
    job = Job(s, budget or exp.tune.trials)
    for v in job.variants:
        job.bounds(v)  # a bad range fails here, before anything is written
    return job


def dry_run(job: Job, as_json: bool) -> int:
    """Per variant: trials x (epochs x images) of one tune trial, and the FLOPs estimate."""
    s = job.sweep
    grid = [Point(v, job.seed) for v in job.variants]
    view = SimpleNamespace(grid=grid, config_for=lambda p: job.trial_config(p.variant, {}))
    checks.check_all(s, data=False)  # device and storage; the data as the trials see them:
    rows = plan(view, checks.check_data(view) if checks.data_checkable(s) else {})
    for r in rows:
        r.update(trial=f"{r['variant']} x{job.trials}", trials=job.trials)
        r["train_flops"] = r["train_flops"] * job.trials if r["train_flops"] is not None else None
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    head = f"{s.study_name}/tune: {job.trials} trials per variant (tuning split) -> {s.exp_dir}"
    print(
        format_plan(rows, head).replace(f"{len(rows)} trials;", f"{len(rows) * job.trials} trials;")
    )
    return 0


def run(job: Job, args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Train the tune trials; 0 done, 130 interrupted."""
    torch.set_num_threads(command._threads(max(args.workers, 1)))
    children: list = []
    stop = command.install_stop(children)
    s = job.sweep
    if not args.child:
        checks.check_all(s)
        s.exp_dir.mkdir(parents=True, exist_ok=True)
        if args.workers > 1:
            argv = list(sys.argv[1:] if argv is None else argv)
            children.extend(
                command.spawn(s, args.workers - 1, argv, command._threads(args.workers))
            )
    progress = make_progress(len(job.variants) * job.trials, plain=True if args.plain else None)
    try:
        outcome = run_worker(job, stop, progress)
    finally:
        progress.close()
    for child in children:
        child.wait()
    if not args.child:
        print("\n".join(summary_lines(job.sweep.place, job.variants)))
    return 130 if outcome == "interrupted" or stop.is_set() else 0
