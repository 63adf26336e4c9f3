"""Optuna storage for sweeps: where the study lives, the grid lock, heartbeats, stale trials.

- Default: ``JournalStorage(JournalFileBackend(<results>/<protocol>/<exp>/optuna.journal))``:
  no server, safe for several processes on one machine.
- ``--storage postgresql://...`` (any SQLAlchemy URL): workers on many machines share one
  sweep. Optuna's RDB heartbeats (``heartbeat_interval``/``grace_period``) mark a killed
  worker's trial FAIL; the sweep then re-enqueues it.
- Optuna 4.x/5.x has heartbeats only for RDB storage, so for the journal (and RDB without
  heartbeats) a worker touches ``runs/<trial>/heartbeat`` and others fail RUNNING trials
  whose file is older than the grace period.
- Enqueueing the grid is guarded by a lock (PostgreSQL advisory lock, MySQL GET_LOCK, or a
  file lock beside the journal) so concurrent workers never enqueue a point twice; popping a
  WAITING trial is atomic in Optuna's storages (row lock / journal order).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
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
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger("vil-ablate.sweep")
HEARTBEAT_FILE = "heartbeat"


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


def open_storage(
    url: str | None,
    exp_dir: Path,
    heartbeat_s: int = 10,
    grace_s: int = 60,
    on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> BaseStorage:
    """The journal file in ``exp_dir`` (default), a journal at a path, or an RDB URL."""
    if not is_url(url):
        path = Path(url) if url else exp_dir / "optuna.journal"
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    kwargs = {"heartbeat_interval": heartbeat_s, "grace_period": grace_s}
    # Optuna 4.9 renamed failed_trial_callback (deprecated, removed in 6.0).
    params = inspect.signature(RDBStorage.__init__).parameters
    name = "heartbeat_stale_trial_callback"
    if name not in params:
        name = "failed_trial_callback"
    kwargs[name] = on_stale
    return _create_rdb(normalise_url(str(url)), kwargs)


def _create_rdb(url: str, kwargs: dict, attempts: int = 8) -> RDBStorage:
    """RDBStorage, retried: workers starting together race to create Optuna's schema
    (a duplicate ``CREATE TYPE``/``CREATE TABLE`` fails in all but one of them)."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random() * (attempt + 1))  # jitter: let the winner finish
    raise AssertionError("unreachable")


def has_native_heartbeat(storage: BaseStorage) -> bool:
    """RDB storage with heartbeats on (Optuna fails its stale trials itself)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


class GridLock:
    """A study-wide mutex for enqueueing grid points (one holder at a time, any machine)."""

    def __init__(self, url: str | None, exp_dir: Path, study_name: str) -> None:
        self.url, self.exp_dir, self.study_name = url, exp_dir, study_name
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
    """Background thread: RDB heartbeat (if enabled) + touching the trial's heartbeat file."""

    def __init__(self, storage: BaseStorage, trial_id: int, run_dir: Path, interval_s: float):
        self.storage, self.trial_id, self.file = storage, trial_id, run_dir / HEARTBEAT_FILE
        self.interval_s, self._stop = interval_s, threading.Event()
        self._native = has_native_heartbeat(storage)
        self._thread = threading.Thread(target=self._beat, daemon=True, name="vil-heartbeat")

    def _beat(self) -> None:
        while True:
            try:
                if self._native:
                    self.storage.record_heartbeat(self.trial_id)
                self.file.parent.mkdir(parents=True, exist_ok=True)
                self.file.write_text(f"{os.uname().nodename} {os.getpid()} {time.time():.0f}\n")
            except Exception as e:  # a missed beat is not fatal; staleness needs many
                log.warning("heartbeat failed: %s", e)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def fail_stale_trials(study: optuna.Study, exp_dir: Path, grace_s: float) -> list[int]:
    """Fail RUNNING trials whose worker stopped beating; return their numbers.

    RDB with heartbeats: Optuna's own check. Otherwise: the heartbeat file in the trial's
    folder (``user_attrs["run_dir"]``) is older than ``grace_s`` (or never appeared within it).
    """
    if has_native_heartbeat(study._storage):
        before = {t.number for t in study.get_trials(False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)
        after = {t.number for t in study.get_trials(False, states=(TrialState.RUNNING,))}
        return sorted(before - after)
    failed = []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run_dir = t.user_attrs.get("run_dir")
        if not run_dir:
            continue
        beat = exp_dir / run_dir / HEARTBEAT_FILE
        last = beat.stat().st_mtime if beat.exists() else t.datetime_start.timestamp()
        if (now - last > grace_s or _dead_here(beat)) and _fail(study, t):
            failed.append(t.number)
    return failed


def _dead_here(beat: Path) -> bool:
    """The beating process ran on this machine and is gone (no need to wait for the grace)."""
    try:
        host, pid, _ = beat.read_text().split()
        if host != os.uname().nodename:
            return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False
    return False


def _fail(study: optuna.Study, trial: FrozenTrial) -> bool:
    try:
        return bool(study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # another worker got there first


def claim_waiting(study: optuna.Study) -> optuna.Trial | None:
    """Atomically move the oldest WAITING trial to RUNNING for this worker (or None).

    Not ``study.ask()``: with nothing WAITING it would create an empty new trial.
    """
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    for t in sorted(waiting, key=lambda t: t.number):
        try:
            if study._storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                return optuna.Trial(study, t._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None
