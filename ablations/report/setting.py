"""The report's Setting section: what the runs recorded (their result.json), never what the
current command says. Where runs differ in a setting, a warning goes to the top of the page.
The class names, per-class image counts and skipped files are written beside the report.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

from ablations.report.load import Experiment
from ablations.schema.config import flatten
from ablations.schema.record import RunRecord
from ablations.schema.same_model import same_model_notes

# (record field, label, restates the science config) in the order the page shows them. Where
# runs differ in a science field, comparable.py warns (key by key, for the runs the tables
# use); the others are warned about here.
S, N = True, False
FIELDS = (
    ("dataset", "dataset", S), ("data_root", "data root", N), ("class_list", "class list", S),
    ("num_classes", "classes", S), ("train_images", "training images", N),
    ("val_images", "validation images", N), ("num_skipped", "skipped files", N),
    ("chance_top1", "chance top-1 (%)", S), ("img_size", "image size (px)", S),
    ("model_size", "model size", S), ("dim", "dim", S), ("depth", "depth", S),
    ("patch_size", "patch", S), ("init", "init", S), ("release", "release", S),
    ("epochs", "epochs", S), ("batch_size", "batch size", S),
    ("base_lr", "base lr (at batch 1024)", S), ("peak_lr", "peak lr (used)", S),
    ("precision", "precision", S), ("compile", "compile", N), ("device", "device", N),
    ("world_size", "processes", N), ("git_rev", "git rev", N),
)  # fmt: skip
RECORD_FIELDS = {f.name for f in dataclasses.fields(RunRecord)}
DATA_FILES = {"classes": "classes.txt", "counts": "data_counts.csv", "skipped": "skipped_files.csv"}


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value in (None, "") else str(value)


def _axis_fields(exp: Experiment) -> set[str]:
    """Fields that vary by design along the experiment's axis (no warning for those)."""
    key = str(exp.meta.get("axis_key") or f"model.{exp.axis}")
    leaf = key.rsplit(".", 1)[-1]
    related = {"size": {"model_size", "dim", "depth"}, "patch_size": {"patch_size"}}
    return {leaf, *related.get(leaf, set())}


def values(exp: Experiment) -> dict[str, Counter]:
    """Per field, how many recorded runs had each value."""
    return {f: Counter(_text(getattr(r, f)) for r in exp.recorded()) for f, *_ in FIELDS}


def setting_lines(exp: Experiment) -> tuple[list[str], list[str]]:
    """(bullet lines of the setting, warnings about runs that differ)."""
    if not exp.recorded():
        return ["- No run has recorded its setting yet (nothing has started)."], []
    lines, warnings, axis = [], [], _axis_fields(exp)
    for f, label, in_science in FIELDS:
        counts = values(exp)[f]
        if len(counts) == 1:
            lines.append(f"- {label}: {next(iter(counts))}")
            continue
        spread = ", ".join(f"{v} ({n} run{'s' if n > 1 else ''})" for v, n in counts.most_common())
        lines.append(f"- {label}: {spread}")
        if f not in axis and not in_science:
            warnings.append(f"runs differ in {label}: {spread}")
    seeds = sorted({int(r.seed) for r in exp.recorded()})
    lines.append(f"- seeds: {', '.join(map(str, seeds))}")
    lines += _per_class_lines(exp)
    return lines, warnings


def _per_class_lines(exp: Experiment) -> list[str]:
    data = exp.recorded()[0].data
    lines = []
    for split in ("train", "val"):
        per = data.get(f"{split}_per_class") or {}
        if per:
            lo, hi = min(per.values()), max(per.values())
            span = f"{lo}" if lo == hi else f"{lo}-{hi}"
            lines.append(f"- {split} images per class: {span} over {len(per)} classes")
    names = data.get("class_names") or []
    if names:
        shown = ", ".join(map(str, names[:10])) + (", …" if len(names) > 10 else "")
        lines.append(f"- class names: {shown} ([{DATA_FILES['classes']}]({DATA_FILES['classes']}))")
    return lines


def write_data_files(exp: Experiment) -> list[str]:
    """classes.txt, data_counts.csv and skipped_files.csv of the runs; lines linking them."""
    recs = exp.recorded()
    if not recs:
        return []
    data = recs[0].data
    names = [str(n) for n in data.get("class_names") or []]
    (exp.write_dir / DATA_FILES["classes"]).write_text("".join(f"{n}\n" for n in names))
    _write_counts(exp.write_dir / DATA_FILES["counts"], names, data)
    skipped = _skipped(recs)
    _write_rows(exp.write_dir / DATA_FILES["skipped"], ["split", "path", "reason"], skipped)
    counts = DATA_FILES["counts"]
    link = f"[{DATA_FILES['skipped']}]({DATA_FILES['skipped']})"
    return [f"- per-class counts: [{counts}]({counts}); skipped files: {len(skipped)} ({link})"]


def _write_counts(path: Path, names: list[str], data: dict) -> None:
    train, val = data.get("train_per_class") or {}, data.get("val_per_class") or {}
    rows = [[n, train.get(n, ""), val.get(n, "")] for n in names]
    _write_rows(path, ["class", "train", "val"], rows)


def _skipped(recs: list[RunRecord]) -> list[list[str]]:
    seen: dict[tuple, list[str]] = {}
    for r in recs:
        for item in r.data.get("skipped") or []:
            row = [
                str(item.get("split", "")),
                str(item.get("path", "")),
                str(item.get("reason", "")),
            ]
            seen.setdefault(tuple(row), row)
    return list(seen.values())


def _write_rows(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def deviations(exp: Experiment) -> list[str]:
    """How the runs' configs differ from the paper's protocol, key by key (in the order the
    runs list them). Where runs differ in a key, every value is listed with its runs, those
    that record no deviation for it too (a variant that sets the key itself, e.g. bi at
    ``train.epochs: 4``, records none): no run reads as having run the paper's value."""
    recorded = exp.recorded()
    ordered = sorted(recorded, key=lambda r: (r.variant, r.seed))
    by_key: dict[str, dict[str, list[str]]] = {}
    for d in dict.fromkeys(d for r in recorded for d in r.deviations):
        by_key.setdefault(_deviation_key(d), {})[d] = []
    for r in ordered:
        for d in r.deviations:
            by_key[_deviation_key(d)][d].append(_run_name(r))
    return [_deviation_line(key, texts, ordered) for key, texts in by_key.items()]


def _run_name(r: RunRecord) -> str:
    return f"{r.variant}-s{r.seed}"


def _deviation_key(text: str) -> str:
    """``train.epochs: 2 (paper: 400)`` -> ``train.epochs``; free text is its own key."""
    key, sep, _ = text.partition(": ")
    return key if sep else text


def _deviation_line(key: str, texts: dict[str, list[str]], runs: list[RunRecord]) -> str:
    """One key's deviation; with the runs of each value where not every run has the same."""
    listed = {n for names in texts.values() for n in names}
    rest = [r for r in runs if _run_name(r) not in listed]
    if len(texts) == 1 and not rest:
        return next(iter(texts))
    if key in texts:  # free text (no key: value): who has it, nothing to say of the others
        return f"{key} (only {', '.join(texts[key])})"
    parts = [f"{d.partition(': ')[2]} ({', '.join(names)})" for d, names in texts.items()]
    paper = next((_paper_value(d) for d in texts if " (paper: " in d), None)
    values: dict[tuple[str, str], list[str]] = {}
    for r in rest:
        values.setdefault(_own_value(r, key, paper), []).append(_run_name(r))
    parts += [
        f"{v} ({', '.join(names)}{'; ' + n if n else ''})" for (v, n), names in values.items()
    ]
    return f"{key}: " + "; ".join(parts)


def _paper_value(text: str) -> str:
    """``model.size: tiny (192/12) (paper: small (384/24))`` -> ``small (384/24)``."""
    value = text.rpartition(" (paper: ")[2]
    return value[:-1] if value.endswith(")") else value


def _own_value(r: RunRecord, key: str, paper: str | None) -> tuple[str, str]:
    """(value, note) of ``key`` for a run without a deviation for it: its recorded config (or
    a record field such as ``precision``); the note says whether it is the paper's value or
    the run's variant sets it itself."""
    flat = flatten(r.config or {})
    value = flat[key] if key in flat else getattr(r, key, None) if key in RECORD_FIELDS else None
    text = "not recorded" if value is None else str(value)
    notes = ["set by the variant"] if key in (r.own_keys or []) else []
    notes += ["the paper's value"] if paper is not None and text == paper else []
    return text, ", ".join(notes)


def model_notes(exp: Experiment) -> list[str]:
    """Variants whose runs trained fewer directions than their traversal names, or the same
    model as another variant (from each variant's first recorded run)."""
    first: dict[str, RunRecord] = {}
    for r in exp.recorded():
        if r.science and r.depth and r.dim:
            first.setdefault(r.variant, r)
    order = [v for v in exp.variants if v in first]
    return same_model_notes({v: (first[v].science, first[v].dim, first[v].depth) for v in order})
