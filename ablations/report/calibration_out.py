"""Writing a calibration: calibration.md (table), calibration.csv, calibration.png (coverage;
detection vs predicted power) and calibration.json, which ``sweep --dry-run`` reads
(``known_spread``) to say what a grid's seeds resolve before it is trained."""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless, as the report's figures

import matplotlib.pyplot as plt  # noqa: E402

from ablations.report.calibration import Calibration, Rate  # noqa: E402
from ablations.report.load import Experiment  # noqa: E402

JSON_FILE = "calibration.json"
DATA_PREFIX = "data."  # the science keys that say which dataset a spread belongs to
NOT_DATASET = {"data.label_noise"}  # the planted arm's own key, not the dataset's


def dataset_keys(science: dict[str, Any]) -> dict[str, Any]:
    """The data part of a run's science config: what "the same dataset" means here."""
    return {k: v for k, v in sorted(science.items())
            if k.startswith(DATA_PREFIX) and k not in NOT_DATASET}  # fmt: skip


def _times(exp: Experiment) -> dict[str, Any]:
    """Wall time (first start to last finish), summed training time and load, from records."""
    recs = [r for r in exp.records if r.started_at and r.finished_at]
    if not recs:
        return {}
    parse = datetime.fromisoformat
    start = min(parse(r.started_at) for r in recs)
    end = max(parse(r.finished_at) for r in recs)
    loads = [r.load.get(k) for r in recs for k in ("loadavg_1m_start", "loadavg_1m_end")]
    loads = [x for x in loads if isinstance(x, int | float)]
    return {"runs": len(recs), "wall_s": (end - start).total_seconds(),
            "train_time_s": sum(r.train_time_s or 0.0 for r in recs),
            "per_run_s": sum((parse(r.finished_at) - parse(r.started_at)).total_seconds()
                             for r in recs) / len(recs),
            "loadavg_1m": [min(loads), max(loads)] if loads else None,
            "cpus": recs[0].load.get("cpus"), "device": recs[0].device}  # fmt: skip


def context(exp: Experiment) -> dict[str, Any]:
    """Protocol, dataset keys, the planted setting and cost: what a reader must know."""
    ref = next((r for r in exp.records if r.variant == "reference" and r.science), None)
    pl = next((r for r in exp.records if r.variant == "planted" and r.science), None)
    planted = {k: v for k, v in (pl.science if pl else {}).items()
               if ref is not None and ref.science.get(k) != v and k != "train.seed"}  # fmt: skip
    return {"protocol": exp.meta.get("protocol"), "experiment_dir": str(exp.exp_dir),
            "description": exp.meta.get("description", ""),
            "dataset": dataset_keys(ref.science) if ref else {},
            "planted_setting": planted, "cost": _times(exp)}  # fmt: skip


def _pct(x: float) -> str:
    return f"{x:.1%}" if math.isfinite(x) else "n/a"


def _pp(x: float) -> str:
    return f"{x:+.2f}" if math.isfinite(x) else "n/a"


ROW_NAMES = {("coverage", "paired"): "A/A: paired 95% CI contains 0",
             ("coverage", "welch"): "A/A: Welch 95% CI contains 0 (other seeds per arm)",
             ("claim", "alone"): "A/A: a claim fires (CI excludes 0)",
             ("claim", "holm"): "A/A: a claim fires, Holm over {aa, planted}",
             ("detection", "paired"): "planted: detected (paired CI excludes 0)"}  # fmt: skip


def table_markdown(cal: Calibration, ctx: dict[str, Any]) -> str:
    """The calibration page: setting, pairing, A/A and planted numbers, the rates table."""
    aa, pl, sp = cal.aa, cal.planted, cal.spread
    cost = ctx.get("cost") or {}
    lines = [f"# Calibration: {ctx.get('protocol')}", "", ctx.get("description", ""), "",
             f"- paired seeds: {len(cal.seeds)} ({', '.join(map(str, cal.seeds))})",
             f"- pairing (run records' digests): {'verified' if cal.pairing['ok'] else 'BROKEN'}"
             f" on {cal.pairing['checked']} seeds"]  # fmt: skip
    lines += [f"  - {p}" for p in cal.pairing["problems"][:10]]
    if cost:
        load = cost.get("loadavg_1m")
        lines.append(f"- cost: {cost['runs']} runs, {cost['wall_s'] / 60:.1f} min wall, "
                     f"{cost['per_run_s']:.0f} s a run on {cost.get('device')} "
                     f"({cost.get('cpus')} CPUs, 1-min load {load})")  # fmt: skip
    lines += ["", "| Quantity | Value |", "| :--- | :--- |",
              f"| A/A Δ (aa − reference), all seeds | {_pp(aa['diff'])} pp, 95% CI "
              f"[{_pp(aa['low'])}, {_pp(aa['high'])}] |",
              f"| A/A spread (sd of per-seed Δ) | {aa['sample_sd']:.3f} pp"
              f"{' (floored)' if aa['floored'] else ''} |",
              f"| reference sd over seeds | {sp['unpaired_sd']:.3f} pp |",
              f"| planted effect ({ctx.get('planted_setting')}) | {_pp(pl['diff'])} pp, 95% CI "
              f"[{_pp(pl['low'])}, {_pp(pl['high'])}] |",
              f"| planted spread (sd of per-seed Δ) | {pl['sample_sd']:.3f} pp |"]  # fmt: skip
    for n, d in sorted(sp["resolvable"].items()):
        lines.append(f"| resolvable at 80% power, {n} paired seeds (A/A spread) | {d:.2f} pp |")
    lines.append(f"| seeds for 0.6 pp at 80% power | {sp['seeds_for_0.6']} |")
    lines += ["", "| Rate | n | Observed | 95% interval (k) | Expected | Agrees | Old model |",
              "| :--- | ---: | ---: | :--- | ---: | :--- | ---: |"]  # fmt: skip
    for r in cal.rates:
        lines.append(f"| {ROW_NAMES[(r.kind, r.method)]} | {r.n} | {_pct(r.rate)} | "
                     f"{_pct(r.low)}-{_pct(r.high)} (k={r.k}) | {_pct(r.expected)} "
                     f"({r.expected_is}) | {'yes' if r.agrees else '**no**'} | "
                     f"{_pct(r.unfloored) if math.isfinite(r.unfloored) else ''} |")  # fmt: skip
    lines += ["", "Intervals: Clopper-Pearson on k = floor(N / seeds a subset uses) trials "
              "(Hoeffding's bound for overlapping subsets; ablations/report/calibration.py). "
              "Claims agree when the nominal 5% is not below the interval. Predicted power: "
              "the report's model with the evaluation-noise floor (power.py); old model: the "
              "noncentral t at the floored pooled spread."]  # fmt: skip
    lines += ["", *[f"- {n}" for n in cal.notes]] if cal.notes else []
    return "\n".join(lines) + "\n"


def _errorbars(ax, rates: list[Rate], x_of, label: str, marker: str) -> None:
    rs = [r for r in rates if math.isfinite(r.rate)]
    if not rs:
        return
    xs = [x_of(r) for r in rs]
    ys = [r.rate for r in rs]
    err = [[r.rate - r.low for r in rs], [r.high - r.rate for r in rs]]
    ax.errorbar(xs, ys, yerr=err, fmt=marker, capsize=4, label=label)


def figure(cal: Calibration, path: Path) -> Path:
    """Left: A/A coverage of 0 (paired, Welch) per n; right: detection vs predicted power."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for method, shift, marker in (("paired", -0.1, "o"), ("welch", 0.1, "s")):
        rs = [r for r in cal.rates if r.kind == "coverage" and r.method == method]
        _errorbars(left, rs, lambda r, s=shift: r.n + s, method, marker)
    left.axhline(0.95, color="grey", linestyle="--", label="nominal 95%")
    left.set_xticks(sorted({r.n for r in cal.rates}) or [3])
    left.set(xlabel="seeds per arm (n)", ylabel="A/A: CI contains 0", ylim=(0, 1.05),
             title="A/A coverage (95% binomial intervals)")  # fmt: skip
    left.legend(loc="lower right")
    det = [r for r in cal.rates if r.kind == "detection"]
    _errorbars(right, det, lambda r: r.expected, "vs the report's model", "o")
    old = [r for r in det if math.isfinite(r.unfloored)]
    _errorbars(right, old, lambda r: r.unfloored, "vs the old model (no floor in the power)", "x")
    for r in det:
        right.annotate(f"n={r.n}", (r.expected, r.rate), textcoords="offset points",
                       xytext=(6, -10))  # fmt: skip
    right.plot([0, 1], [0, 1], color="grey", linestyle="--", label="observed = predicted")
    right.set(xlabel="predicted power (report's model)", ylabel="observed detection rate",
              xlim=(0, 1.02), ylim=(0, 1.05), title="planted effect")  # fmt: skip
    right.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(cal: Calibration, ctx: dict[str, Any], out: Path) -> dict[str, Path]:
    """calibration.md/.csv/.png/.json in ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / "calibration.md", "csv": out / "calibration.csv",
             "figure": out / "calibration.png", "json": out / JSON_FILE}  # fmt: skip
    paths["table"].write_text(table_markdown(cal, ctx))
    with open(paths["csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "method", "n", "observed", "low", "high", "k", "draws",
                    "expected", "expected_is", "agrees"])  # fmt: skip
        for r in cal.rates:
            w.writerow([r.kind, r.method, r.n, r.rate, r.low, r.high, r.k, r.draws,
                        r.expected, r.expected_is, r.agrees])  # fmt: skip
    figure(cal, paths["figure"])
    data = {**ctx, **cal.to_dict(), "finished": bool(cal.seeds)}
    paths["json"].write_text(json.dumps(data, indent=2, default=_plain) + "\n")
    return paths


def _plain(x: Any) -> Any:
    return float(x) if hasattr(x, "__float__") else str(x)
