"""A throw-away PostgreSQL server for tests (session-scoped pytest fixture ``pg_url``).

Finds ``initdb``/``pg_ctl`` under /usr/lib/postgresql/*/bin (or on PATH); if missing and
running as root with apt-get, installs the ``postgresql`` package (``apt-get update`` first
if the install fails). initdb runs as the ``postgres`` user when we are root (the server
refuses root) in a temporary folder it owns; the server listens on 127.0.0.1 on a free port.
Skips with the reason where PostgreSQL cannot be had.

Use: ``from tests.postgres import pg_url  # noqa: F401`` and mark tests ``@pytest.mark.postgres``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import free_port  # noqa: E402


def _find_bin() -> Path | None:
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin"):
        for d in sorted(glob.glob(pattern), reverse=True):
            if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
                return Path(d)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _install() -> str | None:
    """Install postgresql with apt-get; returns why it could not, or None."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "PostgreSQL is not installed and cannot be (not root, or no apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "postgresql"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            return f"apt-get install postgresql failed: {done.stderr.strip()[-200:]}"
    return None


def _as_db_user(cmd: list[str]) -> list[str]:
    """Run as ``postgres`` when we are root (the server refuses to run as root)."""
    if os.geteuid() != 0:
        return cmd
    runner = shutil.which("runuser")
    if runner:
        return [runner, "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(cmd)]


PASSWORD = "vil-test-pw"  # host connections need it (scram): wrong passwords can be tested


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "PGPASSWORD": PASSWORD}
    done = subprocess.run(_as_db_user(cmd), capture_output=True, text=True, timeout=120, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """``postgresql+psycopg2://`` URL (with its password) of a fresh database on a private
    server that authenticates host connections by password."""
    bindir = _find_bin()
    if bindir is None:
        reason = _install()
        bindir = _find_bin()
        if bindir is None:
            pytest.skip(reason or "PostgreSQL binaries not found after installing")
    base = Path(tempfile.mkdtemp(prefix="vil-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    pwfile = base / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres")
    _run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
          "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"])  # fmt: skip
    opts = f"-h 127.0.0.1 -p {port} -k {sock} -c max_connections=200 -c fsync=off"
    _run([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-t", "60",
          "-l", str(base / "server.log"), "start"])  # fmt: skip
    db = f"vil_{uuid.uuid4().hex[:8]}"
    try:
        _run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", db])
        yield f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:{port}/{db}"
    finally:
        subprocess.run(_as_db_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                    "-w", "stop"]), capture_output=True, timeout=120)  # fmt: skip
        time.sleep(0.2)
        shutil.rmtree(base, ignore_errors=True)


def new_database(url: str) -> str:
    """A fresh, empty database on the server of ``url`` (one per test keeps studies apart)."""
    import sqlalchemy

    name = f"vil_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


# --- helpers of the sweep/CLI tests: the CLI in a subprocess, one CPU thread per process ---

REPO = Path(__file__).resolve().parents[1]


def cli_env() -> dict[str, str]:
    """Environment for CLI subprocesses: repo importable, 1 thread (2 shared cores), plain."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def cli_command(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "ablations.app.cli", *args]


def start_cli(*args: str, log: Path | None = None) -> subprocess.Popen:
    """Start the CLI in the background (output to ``log`` or captured)."""
    out = open(log, "a") if log else subprocess.PIPE  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(cli_command(*args), cwd=REPO, env=cli_env(), stdout=out,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the CLI to completion; stdout and stderr captured as text."""
    return subprocess.run(cli_command(*args), cwd=REPO, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
