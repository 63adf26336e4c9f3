"""The structured files of a trial folder: config.yaml, metrics.csv, result.json, train.log.

Every write is atomic (temp file + ``os.replace``) and an OS error names the path.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ablations.schema.errors import ConfigError

METRIC_COLUMNS = (
    "epoch", "step", "lr", "train_loss", "val_loss", "val_top1", "val_top5",
    "epoch_time_s", "img_per_s",
)  # fmt: skip


class PathError(OSError):
    """A disk or permission problem; ``str()`` names the path."""

    def __str__(self) -> str:
        return str(self.args[0])


@contextlib.contextmanager
def naming_path(path: Path, action: str = "write") -> Iterator[None]:
    """Re-raise OS errors as PathError('cannot write <path>: <reason>')."""
    try:
        yield
    except PathError:
        raise
    except OSError as e:
        reason = e.strerror or e.__class__.__name__
        raise PathError(f"cannot {action} {path}: {reason}") from e


def check_folder_creatable(path: Path, what: str) -> None:
    """``ConfigError`` (one line, exit 2) when folder ``path`` could not be made or written:
    its nearest existing ancestor (or itself) is a file, or is not writable. Nothing is
    created, so a check that runs before the work leaves nothing behind. ``what``: the
    option or setting that named it, e.g. "--results results"."""
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "it is a file" if probe == path else f"{probe} is a file, not a folder"
        raise ConfigError(f"{what}: {path}: cannot create this folder: {where}; "
                          "pass a folder you can write")  # fmt: skip
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: {path}: cannot create this folder: {probe} is not "
                          "writable; pass a folder you can write")  # fmt: skip


def unwritable(folder: Path) -> str | None:
    """Why files cannot be made in ``folder`` (or where it would be created), None if they
    can. A real test, not ``os.access``: a temp file is made and removed in the nearest
    existing folder (root ignores permission bits; a read-only mount still refuses it)."""
    here = Path(folder).absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    if not here.is_dir():
        return f"{here} is a file, not a folder"
    try:
        fd, tmp = tempfile.mkstemp(prefix=".vil-ablate-write-test.", dir=here)
    except OSError as e:
        return f"cannot write in {here}: {e.strerror or type(e).__name__}"
    os.close(fd)
    os.unlink(tmp)
    return None


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    with naming_path(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: colleagues must read results
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _umask() -> int:
    """The process's umask (read by setting it, then restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, obj: Any) -> Path:
    """The one JSON writer: atomic (a reader sees the old or the new file, never half of one),
    parent folders created, NaN/inf written as null (JSON has none); returns the path."""
    path = Path(path)
    atomic_write(path, json.dumps(_json_safe(obj), indent=2, sort_keys=False) + "\n")
    return path


def utc_now() -> str:
    """The one timestamp: UTC, ISO 8601 to the second (records, cache index, benchmarks)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_json(path: Path) -> dict | None:
    """The parsed file, or None when it is missing or unreadable (e.g. being replaced)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_yaml(path: Path, obj: Any) -> None:
    atomic_write(path, yaml.safe_dump(_json_safe(obj), sort_keys=False))


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """The whole metrics.csv (rewritten per epoch: small, and consistent after a resume)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in METRIC_COLUMNS})
    atomic_write(path, buf.getvalue())


def _cell(value: Any) -> Any:
    if value is None:
        return ""  # no eval this epoch
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e-3 and value else round(value, 6)
    return value


def trial_logger(run_dir: Path, name: str, enabled: bool = True) -> logging.Logger:
    """A logger appending to ``run_dir/train.log`` (retries append to the same file)."""
    log = logging.getLogger(f"vil-ablate.trial.{name}.{id(run_dir)}")
    log.setLevel(logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    if enabled:
        path = Path(run_dir) / "train.log"
        with naming_path(path):
            handler = logging.FileHandler(path, mode="a")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
    return log


def close_logger(log: logging.Logger) -> None:
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
