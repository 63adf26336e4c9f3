"""``submit``'s bad-input checks (each one line, a ConfigError: exit 2, before anything is
submitted) and the submitit parameters they lead to.

"Local-only" (a journal, or the results folder, that the tasks could not share): a path
- under /tmp, /var/tmp, /dev/shm, /run or $TMPDIR (node-local scratch on every cluster), or
- on a filesystem in this machine's memory (tmpfs, ramfs), or
- on a local disk filesystem (ext2/3/4, xfs, btrfs, zfs, overlay, ...) as /proc/mounts says,
  unless ``--shared-fs`` says every node mounts it too (this machine is its NFS server).
Network and cluster filesystems (nfs, lustre, gpfs, beegfs, cephfs, cifs, ...) and types
it cannot tell are accepted. On SLURM every task may run on another node than this one, so
the rule holds for any submission there; ``--cluster local`` runs everything here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ablations.schema.errors import ConfigError
from ablations.study.storage import is_url, masked

NODE_LOCAL_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")
MEMORY_FS = {"tmpfs", "ramfs", "devtmpfs"}
LOCAL_DISK_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "overlay", "vfat",
                 "exfat", "ntfs", "ntfs3", "jfs", "reiserfs"}  # fmt: skip
LOOPBACK = {"", "localhost", "127.0.0.1", "::1", "ip6-localhost"}
LIST_PARAMS = {"setup", "teardown", "srun_args"}  # --slurm-extra KEY=V appends to these
OWN_FLAGS = {"time": "--time", "nodes": "--nodes", "ntasks_per_node": "--gpus-per-node",
             "gpus_per_node": "--gpus-per-node", "partition": "--partition",
             "account": "--account", "qos": "--qos", "job_name": "the experiment"}  # fmt: skip


@dataclass
class Plan:
    """What will be submitted: the submitit cluster, its parameters, how many tasks."""

    cluster: str
    workers: int
    ranks: int  # DDP ranks of one worker (nodes x ranks per node)
    params: dict[str, Any] = field(default_factory=dict)  # for AutoExecutor.update_parameters


def require_submitit() -> None:
    """submitit is the optional extra ``cluster``: without it, one line (exit 2)."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ConfigError("submit: submitit is not installed; pip install 'vil-ablate[cluster]' "
                          "(or pip install submitit)") from None  # fmt: skip


def parse_time(text: str) -> int:
    """``HH:MM:SS``, ``D-HH:MM:SS``, ``MM:SS`` or minutes -> whole minutes (rounded up)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise ConfigError(f"--time: expected HH:MM:SS or D-HH:MM:SS, got {text!r}")
    days, a, b, c = (int(x) if x else None for x in m.groups())
    if b is None:  # plain minutes (sbatch's own reading of a lone number)
        h, mi, s = 0, a, 0
    elif c is None:  # MM:SS, or HH:MM after a day count (sbatch's forms)
        h, mi, s = (a, b, 0) if days is not None else (0, a, b)
    else:
        h, mi, s = a, b, c
    minutes = (days or 0) * 1440 + h * 60 + mi + (1 if s else 0)
    if minutes < 1:
        raise ConfigError(f"--time: {text!r} is shorter than a minute")
    return minutes


def _mount(path: Path) -> tuple[str, str] | None:
    """(mount point, filesystem type) holding ``path``, from /proc/mounts (None: unknown)."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    best: tuple[str, str] | None = None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, parts[2])
    return best


def _existing(path: Path) -> Path:
    """The path, or its nearest existing parent (a journal not yet created), resolved."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p.resolve()


def local_only(path: Path, shared_fs: bool = False) -> str | None:
    """Why ``path`` is visible on this machine only, or None (see the module docstring)."""
    p = _existing(path)
    dirs = [*NODE_LOCAL_DIRS, *([os.environ["TMPDIR"]] if os.environ.get("TMPDIR") else [])]
    for d in dirs:
        d = os.path.realpath(d)
        if str(p) == d or str(p).startswith(d.rstrip("/") + "/"):
            return f"{path} is under {d}, which is node-local scratch"
    mount = _mount(p)
    if mount is None:
        return None
    point, fstype = mount
    if fstype in MEMORY_FS:
        return f"{path} is on {fstype} ({point}): this machine's memory"
    if fstype in LOCAL_DISK_FS and not shared_fs:
        return (f"{path} is on a local {fstype} disk ({point}) of this machine (pass --shared-fs "
                "if every node mounts it)")  # fmt: skip
    return None


def check_storage_reach(storage: str | None, results: Path, cluster: str, nodes: int,
                        shared_fs: bool) -> None:  # fmt: skip
    """The study and the run folders must be reachable from every task (and every node)."""
    if cluster == "local":
        return
    where = f"--nodes {nodes} (DDP ranks on {nodes} nodes)" if nodes > 1 else "SLURM tasks"
    paths = [("--results", results)]
    if is_url(storage):
        url = urlsplit(str(storage))
        if url.scheme.startswith("sqlite"):
            raise ConfigError(f"--storage {masked(storage)}: SQLite cannot be shared by workers on "
                              "several nodes; use postgresql://... or a journal file on a "
                              "shared filesystem")  # fmt: skip
        if (url.hostname or "") in LOOPBACK:
            raise ConfigError(f"--storage {masked(storage)}: {url.hostname or 'a local socket'} "
                              f"is this machine, not reachable from {where}; give the database "
                              "server's host name")  # fmt: skip
    elif storage:
        paths.insert(0, ("--storage journal", Path(storage)))
    for what, path in paths:  # the default journal lives in the results folder
        why = local_only(path, shared_fs)
        if why:
            raise ConfigError(f"{what}: {why}; {where} cannot share it: put it on a "
                              "shared filesystem (or the study on postgresql://...)")  # fmt: skip


def check_partition(partition: str | None) -> str | None:
    """An unknown partition fails here (from ``sinfo``); returns a note when unchecked."""
    if partition is None:
        return None
    exe = shutil.which("sinfo")
    if exe is None:
        return f"--partition {partition}: not checked (no sinfo here)"
    try:
        done = subprocess.run([exe, "-h", "-o", "%P"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"--partition {partition}: not checked (sinfo: {e})"
    if done.returncode != 0:
        return f"--partition {partition}: not checked (sinfo exit {done.returncode})"
    names = sorted({line.strip().rstrip("*") for line in done.stdout.splitlines() if line.strip()})
    if partition not in names:
        raise ConfigError(f"--partition: {partition!r} is not a partition of this cluster; "
                          f"valid: {', '.join(names) or '(sinfo lists none)'}")  # fmt: skip
    return None


def _value(text: str) -> Any:
    """A --slurm-extra value: int, float, true/false, else the string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def slurm_extra(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs -> ``slurm_KEY`` parameters (names checked by submitit later)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--slurm-extra: expected KEY=VALUE, got {pair!r}")
        if key in OWN_FLAGS:
            raise ConfigError(f"--slurm-extra {key}: set by {OWN_FLAGS[key]}, not here")
        name = f"slurm_{key}"
        if key in LIST_PARAMS:
            out.setdefault(name, []).append(value)
        else:
            out[name] = _value(value)
    return out


def make_plan(args: Any) -> Plan:
    """The submission's shape and parameters from the command line (values checked)."""
    for flag, n, low in (("--workers", args.workers, 1), ("--nodes", args.nodes, 1),
                         ("--gpus-per-node", args.gpus_per_node, 0)):  # fmt: skip
        if n < low:
            raise ConfigError(f"{flag}: expected an integer >= {low}, got {n}")
    minutes = parse_time(args.time)
    per_node = max(args.gpus_per_node, 1)
    ranks = args.nodes * per_node
    name = f"vil-{args.experiment}"
    if args.cluster == "local":  # one machine: K nodes x G become K*G local ranks
        params = {"name": name, "timeout_min": minutes, "nodes": 1, "tasks_per_node": ranks,
                  "gpus_per_node": args.nodes * args.gpus_per_node}  # fmt: skip
        return Plan("local", args.workers, ranks, params)
    params = {"name": name, "timeout_min": minutes, "nodes": args.nodes,
              "tasks_per_node": per_node, "gpus_per_node": args.gpus_per_node}  # fmt: skip
    for key, value in (("partition", args.partition), ("account", args.account),
                       ("qos", args.qos)):  # fmt: skip
        if value:
            params[f"slurm_{key}"] = value
    params.update(slurm_extra(args.slurm_extra))
    return Plan("slurm", args.workers, ranks, params)


def check_slurm_here() -> None:
    """submitit's SLURM executor needs srun and sbatch on this machine."""
    missing = [exe for exe in ("srun", "sbatch") if shutil.which(exe) is None]
    if missing:
        raise ConfigError(f"submit: {' and '.join(missing)} not found: this is not a SLURM "
                          "login node; --cluster local runs the tasks on this machine")  # fmt: skip


def executor_error(e: Exception) -> ConfigError:
    """submitit's refusal of a parameter, as one line."""
    text = str(e)
    m = re.search(r"Unknown argument '([^']+)'.*?Valid arguments: ([^\n]*)", text)
    if m:
        valid = ", ".join(sorted(v.strip() for v in m.group(2).split(",")))
        return ConfigError(f"--slurm-extra: {m.group(1)!r} is not a submitit SLURM parameter; "
                           f"valid: {valid}")  # fmt: skip
    first = next((x.strip() for x in text.splitlines() if x.strip()), type(e).__name__)
    return ConfigError(f"--slurm-extra: submitit refused the parameters: {first}"[:600])
