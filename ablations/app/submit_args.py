"""``submit``'s own flags (argparse only: ``--help`` imports neither torch nor submitit) and
the argument list each submitted task runs: the command line given, less these flags.

The tasks get the submit command line itself with ``submit`` turned into ``sweep`` and the
flags below removed, so every other flag (the sweep's, and any added later) reaches them
unchanged without being listed here.
"""

from __future__ import annotations

import argparse

CLUSTERS = ("slurm", "local")  # submitit executors: SLURM, or the tasks on this machine

# Flags that say how to submit, with the number of values each takes: not forwarded.
# --rerun / --retry-failed act once, at submission (the tasks must not redo them on requeue).
SUBMIT_ONLY = {
    "--workers": 1, "--nodes": 1, "--gpus-per-node": 1, "--partition": 1, "--time": 1,
    "--account": 1, "--qos": 1, "--slurm-extra": 1, "--cluster": 1, "--folder": 1,
    "--wait": 0, "--dry-run": 0, "--json": 0, "--shared-fs": 0, "--rerun": 0,
    "--retry-failed": 0,
}  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The submit-only flags (the experiment and the sweep's flags are added by cli_args)."""
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="sweep workers: N tasks of a job array (default 1)")  # fmt: skip
    p.add_argument("--nodes", type=int, default=1, metavar="K",
                   help="nodes per worker: each trial trains with DDP over K nodes")  # fmt: skip
    p.add_argument("--gpus-per-node", type=int, default=1, metavar="G",
                   help="GPUs per node, one DDP rank each (0: one CPU rank per node)")  # fmt: skip
    p.add_argument("--partition", metavar="X", help="SLURM partition (default: the cluster's)")
    p.add_argument("--time", required=True, metavar="HH:MM:SS",
                   help="time limit of each task (D-HH:MM:SS also); at the limit it is "
                        "requeued and resumes its trial from the checkpoint")  # fmt: skip
    p.add_argument("--account", metavar="A", help="SLURM account")
    p.add_argument("--qos", metavar="Q", help="SLURM quality of service")
    p.add_argument("--slurm-extra", action="append", default=[], metavar="KEY=VALUE",
                   help="another submitit SLURM parameter, e.g. cpus_per_task=16, mem_gb=64, "
                        "constraint=a100, signal_delay_s=180 (repeatable)")  # fmt: skip
    p.add_argument("--cluster", choices=CLUSTERS, default="slurm",
                   help="slurm (default), or local: the same tasks on this machine "
                        "(submitit's LocalExecutor; K nodes x G: K*G local ranks)")  # fmt: skip
    p.add_argument("--folder", metavar="DIR",
                   help="submitit's log folder (default: <experiment>/submitit)")  # fmt: skip
    p.add_argument("--shared-fs", action="store_true",
                   help="the results folder (and journal) sit on a local disk here that every "
                        "node mounts too (this machine is its NFS server, say)")  # fmt: skip
    p.add_argument("--wait", action="store_true",
                   help="block until the tasks end; exit as `sweep` would")  # fmt: skip
    p.add_argument("--dry-run", action="store_true",
                   help="print the sbatch parameters and the grid; submit nothing")  # fmt: skip
    p.add_argument("--json", action="store_true", help="with --dry-run: JSON output")


def task_argv(argv: list[str]) -> list[str]:
    """The submit command line as each task's ``sweep --child`` command line."""
    out: list[str] = []
    skip, renamed = 0, False
    for a in argv:
        if skip:
            skip -= 1
            continue
        name = a.split("=", 1)[0]
        if name in SUBMIT_ONLY:
            skip = 0 if "=" in a else SUBMIT_ONLY[name]
            continue
        if a == "submit" and not renamed:
            out.append("sweep")
            renamed = True
            continue
        out.append(a)
    return [*out, "--workers", "1", "--child", "--plain"]


def status_argv(argv: list[str]) -> list[str]:
    """The ``status`` command line that watches what this submit command started."""
    out = task_argv(argv)[:-4]  # less --workers 1 --child --plain
    if "sweep" in out:
        out[out.index("sweep")] = "status"
    return out
