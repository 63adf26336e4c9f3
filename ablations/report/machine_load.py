"""Whether the runs' throughput and train time can be compared: each was measured under the
machine load its run recorded (``RunRecord.load``, ablations/train/record.py), and a run that
shared the CPU with other work is slower for reasons that have nothing to do with its model.

The report marks the time and img/s columns "not comparable" (and never ranks or sorts on
them) when the runs it aggregates differ in load by more than ``LOAD_MARGIN``, or ran on
different cores, torch threads or devices; runs that recorded no load are named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ablations.report.load import Experiment
from ablations.schema.record import RunRecord

# A CPU-bound run gets about min(1, cores / load) of the cores it asks for (the 1-minute load
# average counts the run's own threads), so its time scales with the slowdown max(1, load /
# cores). Runs whose slowdowns differ by more than this fraction are not compared: repeated
# runs on a quiet machine spread by a few percent, while the gaps that misled readers (87 vs
# 22 img/s for equal FLOPs) came from slowdowns 2-4x apart.
LOAD_MARGIN = 0.25

MARK = "‡"


@dataclass
class RunLoad:
    """One run's recorded load: mean 1-minute load average, cores, threads, device."""

    name: str
    variant: str
    load: float | None
    cpus: int | None
    threads: int | None
    device: str
    concurrent: int | None

    @property
    def slowdown(self) -> float | None:
        """max(1, load / cores): how much other work (and the run itself) slowed it."""
        if self.load is None or not self.cpus:
            return None
        return max(1.0, self.load / self.cpus)


@dataclass
class LoadCheck:
    """The load of every run the tables aggregate, and why their speeds cannot be compared."""

    runs: list[RunLoad] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # empty: comparable

    @property
    def comparable(self) -> bool:
        return not self.reasons

    @property
    def unknown(self) -> list[str]:
        """Runs that recorded no load (older records, no ``os.getloadavg``)."""
        return [r.name for r in self.runs if r.slowdown is None]

    @property
    def rankable(self) -> bool:
        """Only speeds measured under known, similar load may be sorted or ranked."""
        return self.comparable and not self.unknown

    def variant_text(self, variant: str) -> str:
        """The variant's runs' load as "3.1 on 2 cores" (a range where its runs differ)."""
        mine = [r for r in self.runs if r.variant == variant and r.slowdown is not None]
        if not mine:
            return "not recorded"
        loads = sorted(float(r.load) for r in mine)  # type: ignore[arg-type]
        span = (
            f"{loads[0]:.1f}" if loads[-1] - loads[0] < 0.05 else f"{loads[0]:.1f}-{loads[-1]:.1f}"
        )
        cpus = sorted({int(r.cpus) for r in mine})  # type: ignore[arg-type]
        others = max((r.concurrent or 0 for r in mine), default=0)
        trials = f", {others} other trial{'s' if others > 1 else ''} running" if others else ""
        return f"{span} on {'/'.join(map(str, cpus))} cores{trials}"

    def note(self) -> str:
        """The table's footnote on its time and img/s columns ("" when nothing to say)."""
        if not self.comparable:
            return (f"{MARK} Train time and img/s: measured under load {self._range()} "
                    f"(1-minute load average; per variant in the Load column), not comparable: "
                    f"{'; '.join(self.reasons)}. They are not ranked or sorted on.")  # fmt: skip
        if self.unknown:
            names = ", ".join(self.unknown)
            return (f"Train time and img/s are not ranked: no load recorded for {names}, "
                    "so whether they are comparable is unknown.")  # fmt: skip
        return ""

    def _range(self) -> str:
        known = [r for r in self.runs if r.slowdown is not None]
        lo = min(known, key=lambda r: r.load)  # type: ignore[arg-type,return-value]
        hi = max(known, key=lambda r: r.load)  # type: ignore[arg-type,return-value]
        cpus = "/".join(str(c) for c in sorted({int(r.cpus) for r in known}))  # type: ignore[arg-type]
        return f"{lo.load:.1f} ({lo.name}) to {hi.load:.1f} ({hi.name}) on {cpus} cores"


def run_load(rec: RunRecord) -> RunLoad:
    """What ``rec`` recorded of its load (the mean of its samples, else of start and end)."""
    d = rec.load or {}
    load = d.get("loadavg_1m_mean")
    if load is None:
        ends = [d[k] for k in ("loadavg_1m_start", "loadavg_1m_end") if d.get(k) is not None]
        load = sum(ends) / len(ends) if ends else None
    load = float(load) if load is not None and math.isfinite(float(load)) else None
    return RunLoad(f"{rec.variant}-s{rec.seed}", rec.variant, load, d.get("cpus"),
                   d.get("threads"), rec.device or "", d.get("concurrent_trials"))  # fmt: skip


def check(exp: Experiment) -> LoadCheck:
    """The load of the runs whose time and img/s the main table averages (the result runs)."""
    recs = {r.point: r for r in exp.records}
    runs = []
    for variant in exp.variants:
        for seed in exp.complete(variant)["seed"]:
            rec = recs.get((variant, int(seed)))
            if rec is not None:
                runs.append(run_load(rec))
    return LoadCheck(runs, _reasons(runs))


def _reasons(runs: list[RunLoad]) -> list[str]:
    known = [r for r in runs if r.slowdown is not None]
    out = []
    if known:
        lo, hi = min(r.slowdown for r in known), max(r.slowdown for r in known)  # type: ignore
        if hi > lo * (1.0 + LOAD_MARGIN):
            out.append(f"the runs' slowdowns max(1, load / cores) range {lo:.2f}-{hi:.2f}, "
                       f"more than {LOAD_MARGIN:.0%} apart")  # fmt: skip
    for what, attr in (("cores", "cpus"), ("torch threads", "threads"), ("devices", "device")):
        seen = sorted({str(getattr(r, attr)) for r in runs if getattr(r, attr) not in (None, "")})
        if len(seen) > 1:
            out.append(f"the runs used different {what} ({', '.join(seen)})")
    return out
