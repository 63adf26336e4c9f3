"""Optuna storage for sweeps: where the study lives, the grid lock, heartbeats, stale trials.

- Default: ``JournalStorage(JournalFileBackend(<results>/<protocol>/<exp>/optuna.journal))``:
  no server, safe for several processes on one machine.
- ``--storage postgresql://...`` (any SQLAlchemy URL): workers on many machines share one
  sweep.
- Heartbeats, on every storage alike and through Optuna's public API only: a worker sets its
  trial's ``heartbeat`` user attribute (unix time) every few seconds; any worker tells a
  RUNNING trial whose beat is older than the grace period (or whose process on this machine
  is gone) FAIL, and the sweep re-enqueues it. (Optuna's own heartbeats exist only for RDB
  storage and only inside ``study.optimize``.)
- Enqueueing and claiming are guarded by a lock (PostgreSQL advisory lock, MySQL GET_LOCK,
  or a file lock beside the journal): concurrent workers never enqueue a point twice, and
  ``study.ask()`` is only called when a WAITING trial exists (it pops it atomically; with
  none it would create an empty trial).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

log = logging.getLogger("vil-ablate.sweep")
JOURNAL_FILE = "optuna.journal"  # the default storage, in the experiment folder
BEAT_ATTR = "heartbeat"  # user attribute: unix time of the trial's last heartbeat
WORKER_ATTR = "worker"  # user attribute: "<host>:<pid>" of the process running the trial


class StorageError(RuntimeError):
    """The storage cannot be used; str() is one line naming the (masked) URL."""


def is_url(storage: str | None) -> bool:
    return bool(storage) and "://" in str(storage)


def masked(url: str | None) -> str | None:
    """The URL without its password (for messages and result files)."""
    if not is_url(url):
        return url
    head, _, tail = str(url).partition("://")
    userinfo, at, host = tail.rpartition("@")
    if not at:
        return str(url)
    user = userinfo.split(":", 1)[0]
    return f"{head}://{user}:***@{host}" if ":" in userinfo else f"{head}://{user}@{host}"


def normalise_url(url: str) -> str:
    """``postgresql://`` means the PostgreSQL driver that is installed (SQLAlchemy 2.1
    defaults to psycopg 3; this project ships psycopg2)."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util

    driver = "psycopg" if importlib.util.find_spec("psycopg") else "psycopg2"
    return f"postgresql+{driver}{sep}{rest}"


def check_storage(url: str | None, timeout_s: int = 10) -> None:
    """Connect once (before any folder is made): reachable, authenticated, usable."""
    if not is_url(url):
        return
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(
            normalise_url(str(url)), **_connect_args(str(url), timeout_s)
        )
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as e:  # driver, DNS, refused, auth: all one line
        raise StorageError(f"--storage {masked(url)}: cannot connect: {_first_line(e)}") from None


def _connect_args(url: str, timeout_s: int) -> dict:
    if url.split(":", 1)[0].split("+")[0] in ("postgresql", "postgres", "mysql"):
        return {"connect_args": {"connect_timeout": timeout_s}}
    return {}


def _first_line(e: BaseException) -> str:
    """The driver's own reason (SQLAlchemy wraps it in several lines of context)."""
    orig = getattr(e, "orig", None) or e
    text = " ".join(str(orig).split("\n")[0].split()) or type(orig).__name__
    return text[:300]


def open_storage(url: str | None, exp_dir: Path) -> BaseStorage:
    """The journal file in ``exp_dir`` (default), a journal at a path, or an RDB URL."""
    if not is_url(url):
        path = Path(url) if url else exp_dir / JOURNAL_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    return _create_rdb(normalise_url(str(url)))


def journal_exists(url: str | None, exp_dir: Path) -> bool:
    """Whether a study may exist at all (an RDB URL: maybe; the journal: its file)."""
    return bool(url) or (exp_dir / JOURNAL_FILE).exists()


def _create_rdb(url: str, attempts: int = 8) -> RDBStorage:
    """RDBStorage, retried: workers starting together race to create Optuna's schema
    (a duplicate ``CREATE TYPE``/``CREATE TABLE`` fails in all but one of them)."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random() * (attempt + 1))  # jitter: let the winner finish
    raise AssertionError("unreachable")


class GridLock:
    """A study-wide mutex for enqueueing grid points (one holder at a time, any machine)."""

    def __init__(
        self, url: str | None, exp_dir: Path, study_name: str, storage: BaseStorage | None = None
    ) -> None:
        self.url, self.exp_dir, self.study_name = url, exp_dir, study_name
        self.storage = storage  # the study's storage: claims a chosen WAITING trial
        self._engine = None
        if is_url(url) and str(url).split(":")[0].split("+")[0] in ("postgresql", "mysql"):
            import sqlalchemy
            from sqlalchemy.pool import NullPool

            self._engine = sqlalchemy.create_engine(normalise_url(str(url)), poolclass=NullPool)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self._engine is None:
            with self._file_lock():
                yield
            return
        from sqlalchemy import text

        key = int.from_bytes(
            hashlib.sha256(self.study_name.encode()).digest()[:8], "big", signed=True
        )
        pg = self._engine.dialect.name == "postgresql"
        take = "SELECT pg_advisory_lock(:k)" if pg else "SELECT GET_LOCK(:n, 3600)"
        give = "SELECT pg_advisory_unlock(:k)" if pg else "SELECT RELEASE_LOCK(:n)"
        args = {"k": key, "n": f"vil-ablate:{self.study_name}"[:64]}
        with self._engine.connect() as conn:
            conn.execute(text(take), args)
            try:
                yield
            finally:
                conn.execute(text(give), args)
                conn.commit()

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        with open(self.exp_dir / ".grid.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


class Heartbeat:
    """Background thread setting the trial's ``heartbeat`` user attribute every interval."""

    def __init__(self, trial: optuna.Trial, interval_s: float):
        self.trial, self.interval_s, self._stop = trial, interval_s, threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="vil-heartbeat")

    def _beat(self) -> None:
        while True:
            try:
                self.trial.set_user_attr(BEAT_ATTR, round(time.time(), 1))
            except Exception as e:  # a missed beat is not fatal; staleness needs many
                log.warning("heartbeat failed: %s", e)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> Heartbeat:
        self.trial.set_user_attr(WORKER_ATTR, f"{os.uname().nodename}:{os.getpid()}")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def fail_stale_trials(study: optuna.Study, grace_s: float) -> list[int]:
    """Tell FAIL every RUNNING trial whose worker stopped beating; return their numbers.

    Stale: the last ``heartbeat`` (or the start, before the first beat) is older than
    ``grace_s``, or the trial's process ran on this machine and is gone.
    """
    failed = []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        start = t.datetime_start.timestamp() if t.datetime_start else now
        last = float(t.user_attrs.get(BEAT_ATTR, start))
        if now - last > grace_s or _dead_here(t.user_attrs.get(WORKER_ATTR)):
            told = study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            if told.state == TrialState.FAIL and "fail_kind" not in told.user_attrs:
                failed.append(t.number)
    return failed


def _dead_here(worker: str | None) -> bool:
    """The trial's process ran on this machine and is gone (no need to wait for the grace)."""
    try:
        host, pid = str(worker).rsplit(":", 1)
        if host != os.uname().nodename:
            return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False
    return False


def claim_waiting(
    study: optuna.Study,
    lock: GridLock,
    wanted: Callable[[optuna.trial.FrozenTrial], bool] | None = None,
) -> optuna.Trial | None:
    """Take the oldest WAITING trial that ``wanted`` accepts (RUNNING), or None.

    Without ``wanted``: ``study.ask()`` pops the oldest WAITING one atomically; under the
    lock so that it is only asked when one waits (with none it would create an empty trial).
    With ``wanted`` (a sweep command's own grid points): the trial is set RUNNING through the
    storage, as ``ask`` does it, which fails when another worker took it first; the trials of
    points another command named stay WAITING for that command.
    """
    with lock.hold():
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if wanted is None or lock.storage is None:
            return study.ask() if waiting else None
        st = lock.storage
        study_id = st.get_study_id_from_name(study.study_name)
        for t in (t for t in waiting if wanted(t)):
            trial_id = st.get_trial_id_from_study_id_trial_number(study_id, t.number)
            try:
                if st.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                    return optuna.Trial(study, trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # finished meanwhile elsewhere
        return None
