"""The report's tables: numbers as DataFrames (the CSVs), then formatted as ``Table``.

Main table (mirror of the paper's Table 2 or 3): one row per variant in sweep order; accuracy
is the mean ± sample std over the complete seeds, cost columns come from the runs. Bold marks a
row's top-1 (top-5) only where the 95% CI of its difference to every other row with results
lies above 0 (``clear_best``), and never across runs that were not trained alike.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ablations.report import comparable, machine_load
from ablations.report.load import Experiment, status_counts
from ablations.report.noise import for_experiment, source_text
from ablations.report.power import MAX_SEEDS, POWER, resolution
from ablations.report.render import MISSING, Cell, Table, fmt, fmt_duration, fmt_pm
from ablations.report.setting import model_notes
from ablations.report.stats import MIN_CLAIM_SEEDS, diff_to_reference, summarise
from vil.poolings import POOLINGS
from vil.traversals import TRAVERSALS

REF_MARK = "†"
FOOT_REF = f"{REF_MARK} reference variant: differences are measured against it."
FOOT_MISSING = f"{MISSING} no complete run with this value (see Run status below)."
FOOT_N = "n: complete seeds / this variant's grid points; mean ± sample std (ddof=1) over them."


def _first_finite(rows: pd.DataFrame, col: str) -> float:
    """A per-variant constant (params, FLOPs) from any run that recorded it."""
    vals = rows[col][np.isfinite(rows[col])]
    return float(vals.median()) if len(vals) else math.nan


def _traversal_columns(variant: str) -> dict:
    if variant not in TRAVERSALS:
        return {"directions_per_block": math.nan, "param_sharing": ""}
    tr = TRAVERSALS[variant]
    sharing = "n/a" if tr.directions_per_block == 1 else tr.share
    return {"directions_per_block": tr.directions_per_block, "param_sharing": sharing}


def _head_input(exp: Experiment, variant: str) -> float:
    dim = exp.config("model", "dim")
    if variant not in POOLINGS or dim is None:
        return math.nan
    return float(POOLINGS[variant].out_dim(int(dim)))


def main_frame(exp: Experiment) -> pd.DataFrame:
    """One row per variant with the raw aggregates (written as the main table's CSV)."""
    out = []
    for variant in exp.variants:
        rows, done = exp.rows(variant), exp.complete(variant)
        t1, t5 = summarise(done["top1"]), summarise(exp.complete(variant, "top5")["top5"])
        rec = {"variant": variant, "reference": variant == exp.reference}
        if exp.axis == "pooling":
            rec["head_input"] = _head_input(exp, variant)
        else:
            rec.update(_traversal_columns(variant))
        rec |= {
            "params_m": _first_finite(rows, "params") / 1e6,
            "gflops": _first_finite(rows, "flops") / 1e9,
            "top1_mean": t1.mean,
            "top1_std": t1.std,
            "top5_mean": t5.mean,
            "top5_std": t5.std,
            "n_complete": t1.n,
            "n_grid": int(rows["seed"].nunique()),  # this variant's own grid points
            "train_time_s": summarise(done["train_time_s"]).mean,
            "img_per_s": summarise(done["img_per_s"]).mean,
            "peak_mem_mb": summarise(done["peak_mem_mb"]).mean,
        }
        rec |= _match_columns(exp, variant)
        out.append(rec)
    return _with_load(pd.DataFrame(out), machine_load.check(exp))


def _with_load(frame: pd.DataFrame, check: machine_load.LoadCheck) -> pd.DataFrame:
    """The load the variants' result runs were timed under, and whether their time and
    img/s compare (one flag for the table: machine_load.LOAD_MARGIN)."""
    if frame.empty:
        return frame
    means = []
    for variant in frame["variant"]:
        loads = [r.load for r in check.runs if r.variant == variant and r.load is not None]
        means.append(float(np.mean(loads)) if loads else math.nan)
    return frame.assign(load_1m=means, speed_comparable=check.comparable)


def _match_columns(exp: Experiment, variant: str) -> dict:
    """match: the solved depth (or width) and the matched figure vs the reference's."""
    recs = [r for r in exp.recorded() if r.variant == variant and r.match and r.match_target]
    if not recs:
        return {}
    r = recs[0]
    figure = r.params if r.match == "params" else r.flops
    diff = 100.0 * (figure / r.match_target - 1.0) if figure else math.nan
    return {"match": r.match, "solved": r.match_value, "match_diff_pct": diff}


def clear_best(exp: Experiment, metric: str = "top1") -> set[str]:
    """The variant whose 95% CI of ``metric``'s difference to every other variant with results
    lies above 0 (an intersection-union test: each at 95%, no correction needed); none when
    there is no such variant, a single variant, or a pair that is not comparable."""
    have = [v for v in exp.variants if len(exp.complete(v, metric))]
    for a in have if len(have) > 1 else []:
        if all(_clearly_above(exp, a, b, metric) for b in have if b != a):
            return {a}
    return set()


def _clearly_above(exp: Experiment, a: str, b: str, metric: str) -> bool:
    """a's CI (evaluation-noise floor included) above b's, on >= MIN_CLAIM_SEEDS seeds each."""
    if comparable.pair_keys(exp, a, b):
        return False
    noise = for_experiment(exp, a, b, metric)
    ci = diff_to_reference(exp.by_seed(a, metric), exp.by_seed(b, metric), noise=noise)
    return ci.enough_seeds and ci.low > 0  # NaN (no CI): False


def _bold_mask(exp: Experiment, frame: pd.DataFrame, metric: str) -> pd.Series:
    return frame["variant"].isin(clear_best(exp, metric))


FOOT_BOLD = (
    "Bold: the row's 95% CI of the difference to every other row lies above 0 (paired "
    "or Welch as in the difference table, spread floored at the evaluation noise, "
    f">= {MIN_CLAIM_SEEDS} complete seeds each; all must hold, so no correction is needed)."
)
FOOT_NO_BOLD = (
    "No bold: no row's 95% CI of the difference to every other row lies above 0 "
    f"(or some rows were not trained alike, or have fewer than {MIN_CLAIM_SEEDS} complete "
    "seeds)."
)


def _name_cell(row: pd.Series) -> Cell:
    return Cell(row["variant"] + (REF_MARK if row["reference"] else ""))


def _acc_cells(r: pd.Series, best: dict, i: int, top5: bool) -> list[Cell]:
    cells = [
        Cell(fmt_pm(r["top1_mean"], r["top1_std"]), bool(best["top1"][i])),
        Cell(f"{int(r['n_complete'])}/{int(r['n_grid'])}"),
    ]
    if top5:
        cells.append(Cell(fmt_pm(r["top5_mean"], r["top5_std"]), bool(best["top5"][i])))
    return cells


def _cost_cells(r: pd.Series) -> list[Cell]:
    """Cost columns: measured on whatever machine ran each trial, so never bold as "best"."""
    return [Cell(fmt(r["params_m"], 3)), Cell(fmt(r["gflops"], 3))]


def _speed_cells(r: pd.Series, load: machine_load.LoadCheck) -> list[Cell]:
    """Train time and img/s; marked, with the variant's load beside them, when the runs
    were timed under load too different to compare (machine_load.py)."""
    cells = [Cell(fmt_duration(r["train_time_s"])), Cell(fmt(r["img_per_s"], 0))]
    if load.comparable:
        return cells
    marked = [Cell(f"{c.text} {machine_load.MARK}" if c.text != MISSING else c.text) for c in cells]
    return [*marked, Cell(load.variant_text(r["variant"]))]


def _speed_head(load: machine_load.LoadCheck) -> list[str]:
    return ["Train time", "img/s"] + ([] if load.comparable else ["Load (1-min avg)"])


def main_table(exp: Experiment, frame: pd.DataFrame) -> Table:
    """Format ``main_frame`` as the paper-style table for the experiment's axis."""
    top5 = show_top5(exp)
    load = machine_load.check(exp)
    best = {m: _bold_mask(exp, frame, m) for m in ("top1", "top5")}
    acc_head = ["Top-1 (%)", "n"] + (["Top-5 (%)"] if top5 else [])
    cost_head = ["#Params (M)", "GFLOPs (fwd/img)"]
    rows = []
    for i, r in frame.iterrows():
        acc = _acc_cells(r, best, i, top5)
        if exp.axis == "pooling":
            rows.append([_name_cell(r), Cell(fmt(r["head_input"], 0)), *acc])
        elif exp.axis == "traversal":
            dirs = [Cell(fmt(r["directions_per_block"], 0)), Cell(r["param_sharing"] or MISSING)]
            rows.append([_name_cell(r), *dirs, *_cost_cells(r), *acc, *_speed_cells(r, load)])
        else:
            rows.append([_name_cell(r), *_cost_cells(r), *acc, *_speed_cells(r, load)])
    if exp.axis == "pooling":
        headers = ["Pooling", "Head input", *acc_head]
        caption = f"{exp.name}: pooling variants (mirror of the paper's Table 3)"
    elif exp.axis == "traversal":
        headers = ["Traversal", "Dir./block", "Param. sharing", *cost_head, *acc_head]
        headers += _speed_head(load)
        caption = f"{exp.name}: traversal strategies (mirror of the paper's Table 2)"
    else:
        headers = [exp.axis, *cost_head, *acc_head, *_speed_head(load)]
        caption = f"{exp.name}: {exp.axis} variants"
    n_speed = 0 if exp.axis == "pooling" else len(_speed_head(load))  # the last columns
    speed = list(range(len(headers) - n_speed, len(headers)))
    align = "l" + "r" * (len(headers) - 1)
    if exp.axis == "traversal":
        align = "lrl" + "r" * (len(headers) - 3)
    if "solved" in frame:  # matched rows: the solved value and the figure vs the reference
        headers += ["Solved depth/width", "Matched vs ref."]
        for r, row in zip(rows, frame.itertuples(), strict=True):
            ok = np.isfinite(row.match_diff_pct)
            r += [Cell(fmt(row.solved, 0)),
                  Cell(f"{row.match_diff_pct:+.2f}% {row.match}" if ok else MISSING)]  # fmt: skip
        align += "rr"
    bold = best["top1"].any() or (top5 and best["top5"].any())
    notes = [FOOT_REF, FOOT_N, FOOT_MISSING, FOOT_BOLD if bold else FOOT_NO_BOLD]
    if exp.include_truncated and not exp.truncated().empty:
        notes.append("n includes TRUNCATED runs (--include-truncated): see the warning above.")
    notes += [f"Warning: {n}." for n in model_notes(exp)]
    notes += [load.note()] if speed and load.note() else []
    if not top5:
        notes.append("Top-5 not shown: the runs have 5 classes or fewer.")
    unranked = [] if load.rankable else speed
    return Table(headers, rows, align, caption, f"tab:{exp.name}", notes, unranked=unranked)


def show_top5(exp: Experiment) -> bool:
    """Top-5 says nothing when there are 5 classes or fewer."""
    classes = [r.num_classes for r in exp.recorded() if r.num_classes]
    return not classes or min(classes) > 5


def diff_frame(exp: Experiment) -> pd.DataFrame:
    """Top-1 difference of every variant to the reference with a 95% CI (paired on shared
    seeds, else Welch), and what these seeds can resolve."""
    ref = exp.top1_by_seed(exp.reference) if exp.reference else {}
    out = []
    for variant in exp.variants:
        if variant == exp.reference:
            continue
        mine = exp.top1_by_seed(variant)
        check = comparable.pair_check(exp, variant, exp.reference) if exp.reference else None
        if check and check.keys:  # trained differently: no difference, no interval
            out.append(_not_comparable(variant, exp.reference, len(mine), len(ref), check))
            continue
        noise = for_experiment(exp, variant, exp.reference) if exp.reference else None
        ci, res = diff_to_reference(mine, ref, noise=noise), resolution(mine, ref, noise=noise)
        note = ci.note if ci.n_a and ci.n_b else "no complete run on one side"
        rec = {"variant": variant, "reference": exp.reference, "diff_top1": ci.diff}
        rec |= {"ci_low": ci.low, "ci_high": ci.high, "df": ci.df, "n": ci.n_a, "n_ref": ci.n_b}
        rec |= {"min_resolvable": res.min_difference, "seeds_for_margin": res.seeds_for_margin}
        rec |= {"ci_half_width": res.half_width, "floor_sd": ci.floor_sd}
        rec |= {"floored": bool(ci.floored or res.floored)}
        rec["floor_source"] = source_text(noise, sorted(set(mine) & set(ref)))
        notes = [note] if not ci.has_ci else []
        notes += ["spread at the evaluation-noise floor"] if rec["floored"] else []
        notes += [check.note()] if check and check.declared else []
        out.append(rec | {"method": ci.method, "note": "; ".join(notes)})
    return pd.DataFrame(out, columns=_DIFF_COLS)


def _not_comparable(variant: str, ref: str, n: int, n_ref: int, check) -> dict:
    nan = math.nan
    rec = {"variant": variant, "reference": ref, "diff_top1": nan, "ci_low": nan, "ci_high": nan}
    rec |= {"df": nan, "n": n, "n_ref": n_ref, "min_resolvable": nan, "seeds_for_margin": None}
    rec |= {"floor_sd": nan, "floored": False, "floor_source": ""}
    return rec | {"ci_half_width": nan, "method": comparable.NOT_COMPARABLE,
                  "note": check.note()}  # fmt: skip


_DIFF_COLS = ["variant", "reference", "diff_top1", "ci_low", "ci_high", "df", "n", "n_ref"]
_DIFF_COLS += ["min_resolvable", "seeds_for_margin", "ci_half_width", "floor_sd", "floored"]
_DIFF_COLS += ["floor_source", "method", "note"]


def _seeds_cell(value: object, resolvable: float) -> str:
    """Seeds for the paper's margin; ``> MAX_SEEDS`` where the spread is known but more
    seeds than that would be needed, MISSING where there is no spread to go by."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return f"> {MAX_SEEDS}" if np.isfinite(resolvable) else MISSING
    return str(int(value))


def diff_table(exp: Experiment, frame: pd.DataFrame) -> Table:
    rows = []
    for _, r in frame.iterrows():
        ci = f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]" if np.isfinite(r["ci_low"]) else MISSING
        diff = f"{r['diff_top1']:+.2f}" if np.isfinite(r["diff_top1"]) else MISSING
        rows.append([Cell(r["variant"]), Cell(diff), Cell(ci), Cell(fmt(r["df"], 1))])
        rows[-1] += [Cell(f"{r['n']}/{r['n_ref']}"), Cell(r["method"])]
        rows[-1] += [
            Cell(fmt(r["min_resolvable"], 2)),
            Cell(_seeds_cell(r["seeds_for_margin"], r["min_resolvable"])),
        ]
        rows[-1] += [Cell(r["note"])]
    pct = f"{POWER:.0%}"
    headers = [f"Variant − {exp.reference}", "Δ top-1 (pp)", "95% CI", "df", "n/n_ref"]
    headers += ["Method", f"Resolvable at {pct} power (pp)", f"Seeds for 0.6 pp at {pct} power"]
    headers += ["Note"]
    caption = f"{exp.name}: top-1 difference to the reference {exp.reference}"
    notes = [
        "paired: t-interval of per-seed differences (every variant of a seed sees the same "
        "data order and augmentation); welch: independent seeds (see ablations/report/stats.py);",
        f"Resolvable: the true difference these seeds resolve (95% CI excluding 0) with {pct} "
        f"probability at their spread (noncentral t; the CI half-width, in table_diff.csv, is "
        f"resolved with only 50-70% power); Seeds for 0.6 pp: seeds that would resolve the "
        f"paper's smallest margin with {pct} power.",
        "Spread floor: the variance of a per-seed difference is never taken below the "
        "evaluation noise of the two accuracies on the validation images (paired: from the "
        "discordant counts, as in McNemar's test; welch: binomial per side; noise.py); the "
        "larger of the seeds' variance and that floor enters the CI, the resolvable "
        "difference, the seeds needed and bold (table_diff.csv: floor_sd, floored).",
        f'Seeds for 0.6 pp: "> {MAX_SEEDS}": more than {MAX_SEEDS} seeds would be needed '
        f"at this spread; {MISSING}: no spread yet (fewer than 2 complete seeds on a side) or "
        "not comparable.",
        "With one complete seed on a side the difference is shown without a CI; with fewer "
        f"than {MIN_CLAIM_SEEDS} on a side the findings call no claim decided; "
        f"{comparable.NOT_COMPARABLE}: the two were trained differently (no interval); "
        f"{comparable.DECLARED}: they differ in a key the experiment declares (interval kept).",
    ]
    return Table(headers, rows, "lrrrrlrrl", caption, f"tab:{exp.name}-diff", notes)


def status_table(exp: Experiment) -> tuple[pd.DataFrame, Table]:
    """Counts of complete / failed / running / waiting / missing grid points per variant."""
    frame = status_counts(exp)
    cols = ["complete", "truncated", "fail", "interrupted", "running", "waiting", "missing"]
    cols.append("total")
    if frame["other"].any():
        cols.insert(-1, "other")
    rows = [[Cell(r["variant"])] + [Cell(str(r[c])) for c in cols] for _, r in frame.iterrows()]
    headers = ["Variant"] + [c.capitalize() if c != "fail" else "Failed" for c in cols]
    caption = f"{exp.name}: state of every grid point (variant x seed)"
    return frame, Table(headers, rows, "l" + "r" * len(cols), caption, f"tab:{exp.name}-status")
