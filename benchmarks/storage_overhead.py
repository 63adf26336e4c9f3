"""Optuna storage cost per trial with W workers sharing one storage, and nothing to train.

Each worker process repeats a sweep worker's storage calls for one trial (claim a WAITING
trial, record its params and worker, set the result attributes, tell) until the queue is
empty, on the same storage a sweep uses (the journal file by default, or ``--storage URL``).
What it measures is the storage's share of a trial's wall time, and whether it grows when
workers contend for the same file or database.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import optuna

from ablations.study import storage

STUDY = "storage-bench"


def _open(url: str | None, exp_dir: Path, name: str) -> optuna.Study:
    st = storage.open_storage(url, exp_dir)
    return optuna.create_study(study_name=name, storage=st, direction="maximize",
                               load_if_exists=True)  # fmt: skip


def _one_trial(study: optuna.Study, lock: storage.GridLock) -> bool:
    """The storage calls of one sweep trial; False when nothing is WAITING."""
    trial = storage.claim_waiting(study, lock)
    if trial is None:
        return False
    trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
    trial.set_user_attr("heartbeat", time.time())  # one beat (a real trial beats every 10 s)
    study.tell(trial, 0.5)  # results live in the run record, not in the study
    return True


def _worker(url: str | None, exp_dir: str, name: str, ready: Any, out: Any) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _open(url, Path(exp_dir), name)
    lock = storage.GridLock(url, Path(exp_dir), name)
    ready.wait()  # every worker has imported and opened the storage: the clock starts
    t0, n = time.perf_counter(), 0
    while _one_trial(study, lock):
        n += 1
    lock.close()
    out.put((n, time.perf_counter() - t0))


def measure(workers: int, trials: int, exp_dir: Path, url: str | None = None) -> dict[str, Any]:
    """Enqueue ``trials`` trials in a new study, drain them with ``workers`` processes."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exp_dir.mkdir(parents=True, exist_ok=True)
    name = f"{STUDY}-{workers}w-{uuid.uuid4().hex[:8]}"  # a fresh study on a shared server too
    study = _open(url, exp_dir, name)
    for i in range(trials):
        study.enqueue_trial({"variant": "uni", "seed": i}, user_attrs={"variant": "uni"})
    ctx = mp.get_context("spawn")
    ready, out = ctx.Barrier(workers + 1), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, str(exp_dir), name, ready, out))
             for _ in range(workers)]  # fmt: skip
    for p in procs:
        p.start()
    try:
        ready.wait(timeout=120)  # start-up is seconds; a crashed worker never arrives
        t0 = time.perf_counter()
        done = [out.get(timeout=600) for _ in procs]
    except (threading.BrokenBarrierError, queue.Empty):
        codes = [p.exitcode for p in procs]
        for p in procs:
            p.kill()
        raise RuntimeError(f"storage benchmark: a worker on {url or exp_dir} did not finish "
                           f"(exit codes {codes}; see its traceback above)") from None  # fmt: skip
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    n = sum(d[0] for d in done)
    if n != trials:
        raise RuntimeError(f"storage benchmark: {n} of {trials} trials claimed (lost or doubled)")
    return {
        "study": name,
        "workers": workers,
        "trials": n,
        "wall_s": wall,
        "trials_per_s": n / wall,
        "storage_ms_per_trial": 1e3 * sum(d[1] for d in done) / n,  # worker time per trial
    }
