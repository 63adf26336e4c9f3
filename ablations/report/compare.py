"""``vil-ablate compare A B``: two experiment folders side by side (tuned vs untuned results,
table2 vs table2_iso_params), from their run records only.

One row per variant either side has (A's order, then B's extra ones): top-1 mean ± std and
the complete seeds of each side, and B − A with a 95% interval: **paired** over the seeds both
sides completed when they share at least two (a seed fixes the data order and augmentation
stream in both folders: ``stats.py``), else **Welch** over each side's complete seeds. Written
as ``<out>.md``, ``.tex`` and ``.csv`` (raw numbers) by the report's table renderer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ablations.report.render import MISSING, Cell, Table, fmt, fmt_pm, to_markdown, write_table
from ablations.report.stats import DiffCI, paired_ci, summarise, welch_ci
from ablations.schema.record import RunRecord, read_all

COLUMNS = ["variant", "a_top1_mean", "a_top1_std", "a_n", "b_top1_mean", "b_top1_std",
           "b_n", "diff", "ci_low", "ci_high", "method", "shared_seeds", "a_params",
           "b_params"]  # fmt: skip


class CompareError(ValueError):
    """A folder that holds no experiment (one line naming it and what was expected)."""


@dataclass
class Side:
    """One experiment folder: its label and its runs' records."""

    folder: Path
    label: str
    records: list[RunRecord]

    def top1(self, variant: str) -> dict[int, float]:
        """seed -> top-1 of the variant's complete runs."""
        return {int(r.seed): float(r.top1) for r in self.records
                if r.variant == variant and r.state == "COMPLETE" and r.top1 is not None
                and math.isfinite(r.top1)}  # fmt: skip

    def params(self, variant: str) -> float:
        values = [r.params for r in self.records if r.variant == variant and r.params]
        return float(values[0]) if values else math.nan

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(r.variant for r in self.records))


def experiment_folder(path: Path, experiment: str | None, protocol: str | None) -> Path:
    """``path`` itself when it holds runs, else ``path/<protocol>/<experiment>`` of a results
    folder (the only protocol folder holding the experiment when no protocol is given)."""
    path = Path(path)
    if (path / "runs").is_dir() or (path / "experiment.json").is_file():
        return path
    if experiment is None:
        raise CompareError(f"{path}: no runs/ here; pass an experiment folder "
                           "(<results>/<protocol>/<experiment>) or --experiment NAME")  # fmt: skip
    found = sorted(path.glob(f"{protocol or '*'}/{experiment}/runs"))
    if len(found) != 1:
        what = "none" if not found else ", ".join(str(f.parent) for f in found)
        raise CompareError(f"{path}: {experiment} under {protocol or 'any protocol'}: {what} "
                           "(expected exactly one; pass --protocol)")  # fmt: skip
    return found[0].parent


def load_side(folder: Path) -> Side:
    """The records of ``folder``'s runs (a run without a record is not counted)."""
    records = read_all(folder)
    if not records:
        raise CompareError(f"{folder}: no run records (runs/*/result.json); sweep it first")
    first = records[0]
    label = f"{first.protocol}/{first.experiment}" if first.experiment else folder.name
    return Side(folder, label, records)


def difference(b: dict[int, float], a: dict[int, float]) -> tuple[DiffCI, list[int]]:
    """B − A: paired over the seeds both completed when there are >= 2, else Welch."""
    shared = sorted(set(a) & set(b))
    if len(shared) >= 2:
        return paired_ci(b, a), shared
    return welch_ci(list(b.values()), list(a.values())), shared


def compare_frame(a: Side, b: Side) -> pd.DataFrame:
    """One row per variant of either side, with both summaries and B − A."""
    rows = []
    for variant in dict.fromkeys(a.variants + b.variants):
        ta, tb = a.top1(variant), b.top1(variant)
        sa, sb = summarise(list(ta.values())), summarise(list(tb.values()))
        ci, shared = difference(tb, ta)
        both = sa.n and sb.n
        rows.append({
            "variant": variant, "a_top1_mean": sa.mean, "a_top1_std": sa.std, "a_n": sa.n,
            "b_top1_mean": sb.mean, "b_top1_std": sb.std, "b_n": sb.n,
            "diff": ci.diff if both else math.nan, "ci_low": ci.low, "ci_high": ci.high,
            "method": ci.method if both else "", "shared_seeds": len(shared),
            "a_params": a.params(variant), "b_params": b.params(variant),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def _label(a: Side, b: Side) -> tuple[str, str]:
    """The sides' labels; their folders when the labels agree (e.g. tuned vs untuned)."""
    return (a.label, b.label) if a.label != b.label else (str(a.folder), str(b.folder))


def compare_table(a: Side, b: Side, frame: pd.DataFrame) -> Table:
    la, lb = _label(a, b)
    rows = []
    for r in frame.itertuples():
        ci = f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]" if math.isfinite(r.ci_low) else MISSING
        diff = f"{r.diff:+.2f}" if math.isfinite(r.diff) else MISSING
        how = f"paired ({r.shared_seeds} seeds)" if r.method == "paired" else r.method or MISSING
        rows.append([Cell(r.variant), Cell(fmt_pm(r.a_top1_mean, r.a_top1_std)),
                     Cell(str(r.a_n)), Cell(fmt_pm(r.b_top1_mean, r.b_top1_std)),
                     Cell(str(r.b_n)), Cell(diff), Cell(ci), Cell(how),
                     Cell(fmt(r.a_params / 1e6, 3)), Cell(fmt(r.b_params / 1e6, 3))])  # fmt: skip
    headers = ["Variant", "A top-1 (%)", "n A", "B top-1 (%)", "n B", "B − A", "95% CI",
               "Interval", "A #Params (M)", "B #Params (M)"]  # fmt: skip
    notes = [f"A: {la} ({a.folder}); B: {lb} ({b.folder}).",
             "Paired: over the seeds both sides completed (a seed fixes the data and its "
             "augmentation in both); Welch otherwise. n: complete seeds.",
             f"{MISSING}: no complete run on a side, or < 2 seeds for an interval."]  # fmt: skip
    caption = f"{lb} vs {la}: top-1 per variant"
    return Table(headers, rows, "l" + "r" * (len(headers) - 1), caption, "tab:compare", notes)


def compare(a_folder: Path, b_folder: Path, out: Path) -> tuple[Path, str]:
    """Write ``out.{csv,md,tex}`` comparing the two folders; (the .md path, its text)."""
    a, b = load_side(Path(a_folder)), load_side(Path(b_folder))
    frame = compare_frame(a, b)
    table = compare_table(a, b, frame)
    paths = write_table(frame, table, Path(out))
    return paths[1], f"**{table.caption}**\n\n{to_markdown(table)}"
