"""``vil-ablate compare A B``: two experiment folders side by side (tuned vs untuned results,
table2 vs table2_iso_params), from their run records only.

One row per variant either side has (A's order, then B's extra ones): top-1 mean ± std and
the complete seeds of each side, and B − A with a 95% interval: **paired** over the seeds both
sides completed when they share at least two (a seed fixes the data order and augmentation
stream in both folders: ``stats.py``), else **Welch** over each side's complete seeds. As in
a report, the spread is never taken below the evaluation noise of the validation images
(``noise.py``: discordant counts where both runs recorded per-image correctness), and a
variant whose runs in A and B were trained differently in anything but what such a
comparison may vary (``comparable.check_folders``: its own model.* keys, tuned keys,
declared confounds, the seed) gets "not comparable" with the reason instead of an interval.
Written as ``<out>.md``, ``.tex`` and ``.csv`` (raw numbers) by the report's table renderer.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ablations.report.comparable import DECLARED, NOT_COMPARABLE, check_folders
from ablations.report.noise import Eval, Noise, noise
from ablations.report.render import MISSING, Cell, Table, fmt, fmt_pm, to_markdown, write_table
from ablations.report.stats import MIN_CLAIM_SEEDS, DiffCI, paired_ci, summarise, welch_ci
from ablations.schema.files import unwritable
from ablations.schema.record import RunRecord, decode_correct, read_all

COLUMNS = ["variant", "a_top1_mean", "a_top1_std", "a_n", "b_top1_mean", "b_top1_std",
           "b_n", "diff", "ci_low", "ci_high", "method", "shared_seeds", "floor_sd",
           "floored", "a_params", "b_params", "note"]  # fmt: skip


class CompareError(ValueError):
    """A folder that holds no experiment (one line naming it and what was expected)."""


@dataclass
class Side:
    """One experiment folder: its label and its runs' records."""

    folder: Path
    label: str
    records: list[RunRecord]

    def done(self, variant: str) -> list[RunRecord]:
        """The variant's complete runs with a finite top-1 (what the table compares)."""
        return [r for r in self.records if r.variant == variant and r.state == "COMPLETE"
                and r.top1 is not None and math.isfinite(r.top1)]  # fmt: skip

    def top1(self, variant: str) -> dict[int, float]:
        """seed -> top-1 of the variant's complete runs."""
        return {int(r.seed): float(r.top1) for r in self.done(variant)}

    def evals(self, variant: str) -> dict[int, Eval]:
        """seed -> the run's recorded per-image correctness and validation-set size."""
        return {int(r.seed): Eval(decode_correct(r.val_correct), r.val_images or None)
                for r in self.done(variant)}  # fmt: skip

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


def default_stem(a: Path, b: Path) -> Path:
    """``<A's results>/compare/<A>-vs-<B>-<hash>``: A's results folder (above its protocol
    folder); the name holds both folders' paths, relative to it, and a hash of both absolute
    paths, so two different pairs never share a file (the same pair does)."""
    a, b = Path(a).absolute(), Path(b).absolute()
    results = a.parents[1] if len(a.parents) > 1 else a.parent

    def slug(folder: Path) -> str:
        rel = Path(os.path.relpath(folder, results))
        parts = ["up" if p == ".." else p.replace(".", "_") for p in rel.parts if p != "."]
        return "_".join(parts) or "results"  # no dots: the stem takes .md/.csv/.tex

    digest = hashlib.sha256(f"{a}\n{b}".encode()).hexdigest()[:8]
    return results / "compare" / f"{slug(a)}-vs-{slug(b)}-{digest}"


OUTPUTS = (".md", ".csv", ".tex")


def check_out(stem: Path, force: bool) -> None:
    """Before any work: the files may be written there (one line naming the file if not)."""
    stem = Path(stem)
    why = unwritable(stem.parent)
    if why is not None:
        where = stem.with_suffix(".md")
        raise CompareError(f"compare: cannot write {where}: {why}; pass --out STEM elsewhere")
    existing = [stem.with_suffix(ext) for ext in OUTPUTS if stem.with_suffix(ext).exists()]
    if existing and not force:
        raise CompareError(f"compare: {existing[0]} exists; pass --force to overwrite it "
                           "(or --out STEM for another name)")  # fmt: skip


def load_side(folder: Path) -> Side:
    """The records of ``folder``'s runs (a run without a record is not counted)."""
    records = read_all(folder)
    if not records:
        raise CompareError(f"{folder}: no run records (runs/*/result.json); sweep it first")
    first = records[0]
    label = f"{first.protocol}/{first.experiment}" if first.experiment else folder.name
    return Side(folder, label, records)


def difference(
    b: dict[int, float], a: dict[int, float], nz: Noise | None = None
) -> tuple[DiffCI, list[int]]:
    """B − A: paired over the seeds both completed when there are >= 2, else Welch; the
    spread floored at ``nz`` (``noise.noise(b, a, ...)``: its side "a" is B)."""
    shared = sorted(set(a) & set(b))
    if len(shared) >= 2:
        return paired_ci({s: b[s] for s in shared}, {s: a[s] for s in shared}, noise=nz), shared
    fb = nz.side_var("a", sorted(b)) if nz else math.nan
    fa = nz.side_var("b", sorted(a)) if nz else math.nan
    return welch_ci(list(b.values()), list(a.values()), floor_a=fb, floor_b=fa), shared


def compare_frame(a: Side, b: Side) -> pd.DataFrame:
    """One row per variant of either side, with both summaries and B − A."""
    rows = []
    for variant in dict.fromkeys(a.variants + b.variants):
        ta, tb = a.top1(variant), b.top1(variant)
        sa, sb = summarise(list(ta.values())), summarise(list(tb.values()))
        row = {"variant": variant, "a_top1_mean": sa.mean, "a_top1_std": sa.std, "a_n": sa.n,
               "b_top1_mean": sb.mean, "b_top1_std": sb.std, "b_n": sb.n,
               "a_params": a.params(variant), "b_params": b.params(variant)}  # fmt: skip
        rows.append(row | _difference_columns(a, b, variant, ta, tb))
    return pd.DataFrame(rows, columns=COLUMNS)


def _difference_columns(a: Side, b: Side, variant: str, ta: dict, tb: dict) -> dict:
    """B − A's columns: the interval (floored), or "not comparable" and why."""
    nan, shared = math.nan, sorted(set(ta) & set(tb))
    out = {"diff": nan, "ci_low": nan, "ci_high": nan, "method": "", "floor_sd": nan,
           "floored": False, "shared_seeds": len(shared), "note": ""}  # fmt: skip
    if not ta or not tb:
        return out | {"note": "no complete run on a side" if ta or tb else ""}
    check = check_folders(a.done(variant), b.done(variant))
    if check.keys:
        return out | {"method": NOT_COMPARABLE, "note": check.note()}
    nz = noise(tb, ta, b.evals(variant), a.evals(variant))
    ci, _ = difference(tb, ta, nz)
    notes = [ci.note] if ci.note else []
    notes += ["spread at the evaluation-noise floor"] if ci.floored else []
    if ci.has_ci and not ci.enough_seeds:
        notes.append(f"n < {MIN_CLAIM_SEEDS} on a side: no claim either way")
    notes += [check.note()] if check.declared else []
    interval = {"diff": ci.diff, "ci_low": ci.low, "ci_high": ci.high, "method": ci.method}
    return out | interval | {"floor_sd": ci.floor_sd, "floored": ci.floored,
                             "note": "; ".join(notes)}  # fmt: skip


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
                     Cell(fmt(r.a_params / 1e6, 3)), Cell(fmt(r.b_params / 1e6, 3)),
                     Cell(r.note if isinstance(r.note, str) else "")])  # fmt: skip
    headers = ["Variant", "A top-1 (%)", "n A", "B top-1 (%)", "n B", "B − A", "95% CI",
               "Interval", "A #Params (M)", "B #Params (M)", "Note"]  # fmt: skip
    notes = [f"A: {la} ({a.folder}); B: {lb} ({b.folder}).",
             "Paired: over the seeds both sides completed (a seed fixes the data and its "
             "augmentation in both); Welch otherwise. n: complete seeds.",
             "Spread floor: a difference's variance is never taken below the evaluation noise "
             "of the two accuracies on the validation images (paired: from the discordant "
             "counts, as in McNemar's test; Welch: binomial per side; csv: floor_sd, floored).",
             f"{NOT_COMPARABLE}: the variant's runs in A and B were trained differently in more "
             "than its own model.* settings, tuned keys and declared confounds (no interval); "
             f"{DECLARED}: they differ in a key an experiment declares (interval kept).",
             f"{MISSING}: no complete run on a side, or < 2 seeds for an interval."]  # fmt: skip
    notes += [f"Warning: {r.variant}: {r.note}." for r in frame.itertuples()
              if r.method == NOT_COMPARABLE]  # fmt: skip
    caption = f"{lb} vs {la}: top-1 per variant"
    align = "l" + "r" * (len(headers) - 2) + "l"
    return Table(headers, rows, align, caption, "tab:compare", notes)


def compare(a_folder: Path, b_folder: Path, out: Path) -> tuple[Path, str]:
    """Write ``out.{csv,md,tex}`` comparing the two folders; (the .md path, its text)."""
    a, b = load_side(Path(a_folder)), load_side(Path(b_folder))
    frame = compare_frame(a, b)
    table = compare_table(a, b, frame)
    paths = write_table(frame, table, Path(out))
    return paths[1], f"**{table.caption}**\n\n{to_markdown(table)}"
