"""Measuring instruments: timing, peak memory, the environment header, console tables.

Used by ``sweep --dry-run --measure``, the doctor and the benchmark scripts (benchmarks/).

Timing: ``warmup`` untimed calls, then ``repeats`` timed calls (each synchronised on CUDA);
the median is the headline, min/max are kept in the JSON. The process CPU time of each call
(all threads, ``time.process_time``) is kept too: on a CPU shared with other processes it is
far steadier than wall time, so "images per CPU-second" is the fairer A/B figure there.

Peak memory (what is measured, stated in every output):
- CUDA: ``torch.cuda.max_memory_allocated`` over the timed calls, minus the memory allocated
  before them (tensors created by the measured code, caching allocator excluded).
- CPU: one extra call under ``torch.profiler`` with ``profile_memory=True``; the peak of the
  running sum of its CPU allocation/free events = the most bytes of tensors allocated by that
  call alive at once (the CPU analogue of the CUDA figure; tracemalloc cannot see torch).
  Also stored, as ``rss_growth_mib``: growth of the process's peak resident set (Linux
  ``VmHWM``, reset via ``/proc/self/clear_refs``) over the timed calls; it reads ~0 once the
  allocator's heap already holds the memory from earlier calls, so it is only a cross-check.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ablations.schema.files import utc_now
from ablations.train.runtime import git_revision

MIB = 2**20


def sync(device: torch.device) -> None:
    """Wait for queued device work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_kib(key: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else None


class PeakMemory:
    """Context manager: CUDA peak allocation growth, or CPU peak-RSS growth (see module doc)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mib: float = float("nan")
        self.method = ""

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self.method = "cuda max_memory_allocated - allocated before"
            return self
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self._base = _status_kib("VmRSS")
            self.method = "cpu peak RSS (VmHWM after reset) - RSS before"
        except OSError:
            self._base = None
        if self._base is None:
            self._base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.method = "cpu ru_maxrss growth (0 if an earlier phase peaked higher)"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            sync(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) - self._base
            self.peak_mib = peak / MIB
        elif self.method.startswith("cpu peak RSS"):
            self.peak_mib = max((_status_kib("VmHWM") or 0) - self._base, 0) / 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.peak_mib = max(peak - self._base, 0) / 1024


CPU_MEMORY_METHOD = "cpu: peak live torch allocations of one call (torch.profiler memory events)"


# What the profiler's C++ side (kineto) writes straight to fd 2 on every use: start/stop
# markers, a CUDA probe on CPU-only machines, and a warning about blocks allocated before.
KINETO_NOISE = ("USDT:", "SyncActivityProfilerHandler", "gpuGetDeviceCount failed",
                "profiler results will not include")  # fmt: skip


@contextlib.contextmanager
def quiet_profiler() -> Iterator[None]:
    """Hold back fd 2 while profiling and pass on every line that is not kineto's noise (a
    real warning of the profiled code still shows, after the call)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 to redirect (embedded interpreter): leave it alone
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            kept = [line for line in lines if not any(n in line for n in KINETO_NOISE)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def profiled_peak_mib(fn: Callable[[], object]) -> float:
    """Peak MiB of CPU tensor memory allocated by one call of ``fn`` and alive at once."""
    from torch.profiler import ProfilerActivity, profile

    with quiet_profiler(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak / MIB


@dataclass
class Timing:
    """Seconds per call of ``repeats`` timed calls, and the peak memory of a call."""

    times_s: list[float]
    peak_mib: float
    memory_method: str
    rss_growth_mib: float = float("nan")
    cpu_times_s: list[float] = field(default_factory=list)
    median_s: float = field(init=False)
    min_s: float = field(init=False)
    max_s: float = field(init=False)
    median_cpu_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.median_s = statistics.median(self.times_s)
        self.min_s, self.max_s = min(self.times_s), max(self.times_s)
        self.median_cpu_s = statistics.median(self.cpu_times_s or [float("nan")])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    fn: Callable[[], object],
    device: torch.device,
    warmup: int = 1,
    repeats: int = 3,
    memory: bool = True,
) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed, then (CPU, when
    ``memory``) once more under the profiler for its peak memory."""
    for _ in range(warmup):
        fn()
    sync(device)
    times, cpu = [], []
    with PeakMemory(device) as mem:
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    if device.type == "cuda":
        return Timing(times, mem.peak_mib, mem.method, cpu_times_s=cpu)
    if not memory:
        return Timing(times, float("nan"), "not measured", mem.peak_mib, cpu)
    try:
        return Timing(times, profiled_peak_mib(fn), CPU_MEMORY_METHOD, mem.peak_mib, cpu)
    except (AttributeError, RuntimeError):  # profiler internals changed: fall back to RSS
        return Timing(times, mem.peak_mib, mem.method, mem.peak_mib, cpu)


def interleaved(
    fns: Sequence[Callable[[], object]], device: torch.device, warmup: int = 2, repeats: int = 5
) -> tuple[list[float], list[list[float]]]:
    """Time several callables fairly: ``warmup`` untimed rounds, then ``repeats`` timed rounds;
    each round calls every callable once, starting one further along each round (so no
    callable is always first after another's). Returns the first call's seconds of each
    (compile, caches) and each one's timed seconds per round.

    Why: the first steps of a process (allocator, thread pools, kernel caches) are slow, and
    load changes over time; timing one model after another charges both to whichever runs
    first, and interleaving shares them out.
    """
    n = len(fns)
    first, times = [0.0] * n, [[] for _ in range(n)]
    for r in range(warmup + repeats):
        for k in range(n):
            i = (r + k) % n
            start = time.perf_counter()
            fns[i]()
            sync(device)
            elapsed = time.perf_counter() - start
            if r == 0:
                first[i] = elapsed
            if r >= warmup:
                times[i].append(elapsed)
    return first, times


def load_now(device: torch.device) -> dict[str, Any]:
    """The machine's load as timings should state it: 1-minute load average, cores, threads."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"load_1m": load, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "device": str(device)}  # fmt: skip


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def source_digest(package: str = "vil") -> str:
    """Short sha1 of the package's .py files as they are on disk (the code actually measured,
    which may differ from the commit while others edit the tree)."""
    import hashlib
    import importlib

    root = Path(importlib.import_module(package).__file__).parent
    digest = hashlib.sha1()
    for path in sorted(root.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def environment(device: torch.device, note: str = "") -> dict[str, Any]:
    """Everything a reader needs to judge a figure: device, versions, threads, load, date."""
    env = {
        "date_utc": utc_now(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_env": {k: os.environ.get(k, "") for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")},
        "load_avg_1m_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "git_commit": git_revision() or "unknown",
        "vil_source_sha1": source_digest(),
        "note": note,
    }
    env["cpu_looks_shared"] = cpu_busy(device) is not None
    return env


def cpu_busy(device: torch.device) -> str | None:
    """Why CPU timings here are unreliable now, or None: the 1-minute load average (other
    processes) plus this process's threads exceed the cores by more than one. CUDA: None."""
    if device.type != "cpu" or not hasattr(os, "getloadavg"):
        return None
    load, cores, threads = os.getloadavg()[0], os.cpu_count() or 1, torch.get_num_threads()
    if load <= max(cores - threads, 0) + 1.0:
        return None
    return (f"load average {load:.2f} on {cores} cores ({threads} threads here): other "
            "processes share the CPU, so timings are unreliable (models of equal FLOPs may "
            "differ); measure on a quiet machine")  # fmt: skip


def header_line(env: dict[str, Any]) -> str:
    """One-line summary of :func:`environment` for the console."""
    shared = " | CPU shared with other processes (load vs cores)" if env["cpu_looks_shared"] else ""
    return (
        f"{env['date_utc']} | {env['device']} ({env['device_name']}) | torch {env['torch']} | "
        f"threads {env['torch_threads']}/{env['cpu_count']} cores | "
        f"load {env['load_avg_1m_at_start']:.2f} | commit {env['git_commit']} "
        f"(vil/ sha1 {env['vil_source_sha1']}){shared}"
    )


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a table with rich when installed, else as plain aligned text."""
    cells = [[_fmt(v) for v in row] for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        print(f"\n{title}")
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        for r in cells:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
        return
    table = Table(title=title)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in cells:
        table.add_row(*r)
    Console(width=max(140, 17 * len(columns))).print(table)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)
