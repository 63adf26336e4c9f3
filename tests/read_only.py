"""A simulated read-only folder for tests (``with read_only(path): ...``).

A read-only folder, simulated: tests run as root here, and root ignores permission bits
(chmod 555 would not stop it); mounting needs privileges CI lacks. An audit hook (PEP 578)
refuses, as a read-only mount does (EROFS), every write under the folder: opening a file
for writing, making, renaming or removing anything. It sees every file operation of this
process, whatever library makes it (Optuna's journal, pandas, matplotlib).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path

_READ_ONLY: list[str] = []
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_CHANGES = ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link",
            "os.chmod", "os.truncate", "os.utime", "shutil.rmtree")  # fmt: skip


def _under(path: object) -> bool:
    if not isinstance(path, str | bytes | os.PathLike):
        return False
    full = os.path.abspath(os.fsdecode(path))
    return any(full == root or full.startswith(root + os.sep) for root in _READ_ONLY)


def _refuse_writes(event: str, args: tuple) -> None:
    if not _READ_ONLY:
        return
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(flags, int) and flags & _WRITE_FLAGS) or (
            isinstance(mode, str) and any(c in mode for c in "wax+")
        )
        hit = writes and _under(path)
    elif event in _CHANGES:
        hit = any(_under(a) for a in args[:2])
    else:
        return
    if hit:
        raise PermissionError(errno.EROFS, "Read-only file system (simulated)", str(args[0]))


sys.addaudithook(_refuse_writes)


@contextlib.contextmanager
def read_only(folder: Path):
    _READ_ONLY.append(os.path.abspath(folder))
    try:
        yield
    finally:
        _READ_ONLY.pop()
