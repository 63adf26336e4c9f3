"""What each submitted task runs: one DDP rank of one sweep worker.

submitit starts K nodes x G tasks per worker (one per GPU); each task reads its rank from
submitit's job environment (``TorchDistributedEnvironment``) and runs the ordinary
``sweep --child`` worker in a child process with torch.distributed's env:// variables set
(NCCL on CUDA, gloo on CPU: ablations/train/runtime.py). Rank 0 claims trials from the shared
study and broadcasts them; every rank trains them (ablations/sweep/worker.py).

Preemption and time-out (submitit's signal, USR2 by default, some time before the limit):
the task asks its worker to stop at the next step boundary (SIGINT, as Ctrl-C does: the
trial checkpoints and is told FAIL "interrupted", which re-enqueues it to resume), waits for
it, then lets submitit's own handler call ``checkpoint`` (which saves nothing: the trial's
checkpoint is on disk) and requeue the task. The stop is deferred to a step boundary because a
DDP rank cannot leave in the middle of a collective from a signal handler. The requeued task
(or any other worker first) resumes the trial from its checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any

from submitit.helpers import Checkpointable, DelayedSubmission, TorchDistributedEnvironment


def preempt_signal() -> signal.Signals:
    """The signal submitit requeues on (``SUBMITIT_PREEMPT_SIGNAL``, default USR2)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


def distributed_env() -> dict[str, str]:
    """This task's env:// variables for torch.distributed, from submitit's job environment
    (CUDA_VISIBLE_DEVICES untouched: rank r uses cuda:LOCAL_RANK)."""
    d = TorchDistributedEnvironment()
    values = {"MASTER_ADDR": d.master_addr, "MASTER_PORT": d.master_port, "RANK": d.rank,
              "WORLD_SIZE": d.world_size, "LOCAL_RANK": d.local_rank,
              "LOCAL_WORLD_SIZE": d.local_world_size}  # fmt: skip
    return {k: str(v) for k, v in values.items()}


def _threads(env: dict[str, str]) -> int:
    """CPU threads of one rank: SLURM's cpus per task, else this machine's share."""
    if env.get("SLURM_CPUS_PER_TASK"):
        return max(1, int(env["SLURM_CPUS_PER_TASK"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(int(env.get("LOCAL_WORLD_SIZE", 1)), 1))


def _relay(child: subprocess.Popen) -> threading.Event:
    """Signals to the worker: the preemption signal once as SIGINT (stop at the next step
    boundary; the returned event is set), SIGTERM and SIGINT as they come."""
    preempted = threading.Event()

    def on_preempt(signum: int, frame: Any) -> None:
        if not preempted.is_set():
            preempted.set()
            name = signal.Signals(signum).name
            print(f"vil-ablate: {name}: preempted or at the time limit; stopping the trial at "
                  "the next step boundary", file=sys.stderr, flush=True)  # fmt: skip
            child.send_signal(signal.SIGINT)

    def forward(signum: int, frame: Any) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(preempt_signal(), on_preempt)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return preempted


class WorkerFailed(RuntimeError):
    """The sweep worker of a task crashed (not a failed trial: those are recorded as FAIL)."""


class SweepTask(Checkpointable):
    """The submitted callable: ``sweep --child`` with this task's DDP rank; requeued by
    submitit on preemption or time-out (``checkpoint``)."""

    def __init__(self, argv: list[str], cwd: str) -> None:
        self.argv, self.cwd = list(argv), cwd

    def __call__(self, worker: int) -> int:
        """Run worker ``worker``'s rank here; returns the sweep's exit code."""
        env = {**os.environ, **distributed_env(), "PYTHONUNBUFFERED": "1"}
        env.setdefault("OMP_NUM_THREADS", str(_threads(env)))
        requeue = signal.getsignal(preempt_signal())  # submitit's handler: checkpoint + requeue
        cmd = [sys.executable, "-m", "ablations.app.cli", *self.argv]
        cwd = self.cwd if os.path.isdir(self.cwd) else None
        master = f"{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
        print(f"vil-ablate: worker {worker}, rank {env['RANK']} of {env['WORLD_SIZE']} "
              f"(master {master})", file=sys.stderr, flush=True)  # fmt: skip
        child = subprocess.Popen(
            cmd, env=env, cwd=cwd, start_new_session=True
        )  # own session: one SIGINT
        preempted = _relay(child)
        code = child.wait()
        if preempted.is_set() and callable(requeue):
            requeue(preempt_signal(), None)  # rank 0: checkpoint(), requeue, exit; others return
        if code not in (0, 130):  # a crash: the scheduler (sacct, job.exception()) shows FAILED
            raise WorkerFailed(f"sweep worker {worker}, rank {env['RANK']} exited with code "
                               f"{code}; its traceback is in this task's stderr log")  # fmt: skip
        return code

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Nothing new to save (the trial wrote its checkpoint when it stopped): requeue the
        same task, which resumes the trial from there."""
        return DelayedSubmission(self, *args, **kwargs)
