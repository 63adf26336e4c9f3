"""Assemble ``report.md`` (header, tables, findings, figures, run status) and ``index.md``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablations.report import comparable, setting
from ablations.report.findings import AXIS_FINDINGS, findings, findings_markdown, findings_rows
from ablations.report.influence_table import influence_section
from ablations.report.load import Experiment, failures, load_experiment
from ablations.report.plots import all_plots
from ablations.report.render import Table, to_markdown, write_table
from ablations.report.tables import diff_frame, diff_table, main_frame, main_table, status_table
from ablations.report.traversal_figure import draw_paths
from ablations.report.tuning import tuning_section
from vil.traversals import TRAVERSALS

PAPER = "Vision-LSTM (Alkin et al., 2024, arXiv 2406.04303)"
FIG_DIR = "figures"


def _kv(value: object) -> str:
    return "—" if value in (None, "", [], {}) else str(value)


def top_warnings(exp: Experiment) -> str:
    """The page's first lines: runs not trained alike (key by key, per run), truncated runs,
    and other setting differences; "" when there is nothing to warn about."""
    lines = comparable.warnings(exp) + _truncated_warnings(exp) + setting.setting_lines(exp)[1]
    lines += setting.model_notes(exp)  # variants that trained the same model, unused directions
    return "\n>\n".join(f"> **Warning:** {w}" for w in lines) + "\n" if lines else ""


def _truncated_warnings(exp: Experiment) -> list[str]:
    cut = exp.truncated()
    if cut.empty:
        return []
    names = ", ".join(f"{r.variant}-s{int(r.seed)} ({r.fail_reason})" for r in cut.itertuples())
    if exp.include_truncated:
        return [f"{len(cut)} TRUNCATED run(s) are included in the tables and intervals "
                f"(--include-truncated), although they stopped early: {names}"]  # fmt: skip
    return [f"{len(cut)} TRUNCATED run(s) stopped before their last epoch and are left out of "
            f"the tables and intervals (--include-truncated to include them): {names}"]  # fmt: skip


def header(exp: Experiment) -> str:
    """What the runs recorded (their setting) and every deviation from the paper's protocol
    (the warnings where runs differ: ``top_warnings``)."""
    m = exp.meta
    lines, _ = setting.setting_lines(exp)
    head = [
        f"- Experiment `{exp.name}`, axis **{exp.axis}**, reference **{exp.reference}**, "
        f"protocol **{_kv(m.get('protocol'))}**",
        *lines,
        *setting.write_data_files(exp),
    ]
    versions = {k: v for r in exp.recorded()[:1] for k, v in (r.versions or {}).items()}
    if versions:
        head.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if exp.axis == "pooling":
        head.append(
            f"- Note: the paper's Table 3 was trained on ImageNet-1K at 192 px; this sweep uses "
            f"{_kv(exp.config('data', 'dataset'))} at {_kv(exp.config('data', 'img_size'))} px, "
            "so compare trends, not values."
        )
    head += _grid_summary(exp)
    devs = setting.deviations(exp)
    head += ["", f"**Deviations from the paper's setting** ({PAPER}):", ""]
    head += [f"- {d}" for d in devs] or ["- none recorded by the runs"]
    return "\n".join(head) + "\n"


def _grid_summary(exp: Experiment) -> list[str]:
    """One line of state counts; a warning for partial sweeps and unlisted variants."""
    states = exp.runs["state"].value_counts()
    counts = ", ".join(f"{n} {s.lower()}" for s, n in states.items())
    lines = [f"- Grid: {len(exp.runs)} runs ({counts})"]
    if states.get("COMPLETE", 0) < len(exp.runs):
        lines.append("- **Partial sweep**: not every grid point is complete; see Run status.")
    extra = [v for v in exp.variants if v not in exp.meta.get("variants", [])]
    if extra:
        lines.append(f"- Variants in runs.csv but not in experiment.json: {', '.join(extra)}")
    return lines


def _paths_figure(exp: Experiment, fig_dir: Path) -> list[Path]:
    """Traversal paths of the swept traversals (or of the one a pooling sweep uses)."""
    if exp.axis == "traversal":
        names = [v for v in exp.variants if v in TRAVERSALS]
    else:
        used = list(exp.runs["traversal"]) + [exp.config("model", "traversal", default="")]
        names = [t for t in dict.fromkeys(used) if t in TRAVERSALS]
    if not names:
        return []
    size, patch = exp.config("data", "img_size"), exp.config("model", "patch_size")
    side = int(size) // int(patch) if size and patch else 0
    h, w = (side, side) if 2 <= side <= 12 else (6, 8)  # larger grids: illustrative 6x8
    return draw_paths(fig_dir, h, w, names)


def _fig(title: str, paths: list[Path], root: Path) -> str:
    png, pdf = (p.relative_to(root).as_posix() for p in paths)
    return f"### {title}\n\n![{title}]({png})\n\n[PDF]({pdf})\n"


def _failures_md(exp: Experiment) -> str:
    bad = failures(exp)
    if bad.empty:
        return "No failed run.\n"
    lines = [
        "| Variant | Seed | State | Epochs done | Reason |",
        "| :--- | ---: | :--- | ---: | :--- |",
    ]
    for r in bad.itertuples():
        reason = " ".join(str(r.fail_reason).split()).replace("|", r"\|")
        reason = reason if len(reason) <= 300 else reason[:300] + " …"
        seed = "—" if pd.isna(r.seed) else int(r.seed)
        epochs = "—" if pd.isna(r.epochs_done) else int(r.epochs_done)
        lines.append(f"| {r.variant} | {seed} | {r.state} | {epochs} | {reason} |")
    return "\n".join(lines) + "\n\nFull reasons: [table_failures.csv](table_failures.csv).\n"


def _table_md(table: Table) -> str:
    return f"**{table.caption}**\n\n{to_markdown(table)}"


def build_report(exp_dir: Path, include_truncated: bool = False, out: Path | None = None) -> Path:
    """Write tables (md/tex/csv), figures (png/pdf) and ``report.md`` of ``exp_dir`` into
    ``out`` (default: ``exp_dir``; elsewhere, with the runs.csv found there: a read-only
    results folder is only read). ``include_truncated``: TRUNCATED runs count as results."""
    exp_dir = Path(exp_dir)
    out = Path(out) if out is not None else exp_dir
    exp = load_experiment(exp_dir, include_truncated, out / "runs.csv")
    exp.out_dir = out
    main = main_frame(exp)
    tables = {"main": (main, main_table(exp, main))}
    diffs = diff_frame(exp)
    tables["diff"] = (diffs, diff_table(exp, diffs))
    tables["status"] = status_table(exp)
    for key, (frame, table) in tables.items():
        write_table(frame, table, out / f"table_{key}")
    failures(exp).to_csv(out / "table_failures.csv", index=False)
    found = findings(exp)
    pd.DataFrame(findings_rows(found)).to_csv(out / "findings.csv", index=False)
    figs = all_plots(exp, main, out / FIG_DIR)
    paths = _paths_figure(exp, out / FIG_DIR)

    parts = [f"# {exp.name}: ViL {exp.axis} ablation report\n"]
    parts += [w for w in (top_warnings(exp),) if w]
    parts += ["## Setting\n", header(exp), "## Results\n", _table_md(tables["main"][1])]
    parts += ["Files: table_main.{md,tex,csv}.\n", "## Difference to the reference\n"]
    paper = exp.axis in AXIS_FINDINGS  # the paper made claims about this axis
    what = "paper's claims vs. this sweep" if paper else "vs. the reference"
    parts += [_table_md(tables["diff"][1]), f"## Findings ({what})\n"]
    parts += [findings_markdown(found, "Claim (paper)" if paper else "Comparison")]
    parts.append("## Figures\n")
    titles = {"top1": "Top-1 per variant", "top1_vs_gflops": "Top-1 vs GFLOPs (forward, per image)"}
    titles |= {"top1_vs_throughput": "Top-1 vs throughput", "learning_curves": "Learning curves"}
    parts += [_fig(titles[k], v, out) for k, v in figs.items()]
    if paths:
        parts.append(_fig("Traversal paths", paths, out))
    parts.append(tuning_section(exp, out / FIG_DIR))
    parts.append(influence_section(exp_dir))  # "" until `vil-ablate influence EXP` ran
    parts += ["## Run status\n", _table_md(tables["status"][1]), "### Failures\n"]
    parts.append(_failures_md(exp))
    page = out / "report.md"
    page.write_text("\n".join(parts))
    return page


def _index_row(results_dir: Path, meta_path: Path) -> str:
    folder = meta_path.parent
    rel = folder.relative_to(results_dir).as_posix()
    try:
        exp = load_experiment(folder)
    except (ValueError, OSError) as err:  # a broken folder is listed, not hidden
        return f"| [{rel}]({rel}/) | unreadable: {err} | | | | | | |"
    states = exp.runs["state"]
    done = f"{int((states == 'COMPLETE').sum())}/{len(states)}"
    report = f"[report]({rel}/report.md)" if (folder / "report.md").exists() else "not built"
    cells = [f"[{rel}]({rel}/)", exp.name, _kv(exp.meta.get("protocol")), exp.axis]
    cells += [str(len(exp.variants)), str(len(exp.seeds)), done, report]
    return "| " + " | ".join(cells) + " |"


def write_index(results_dir: Path) -> Path:
    """Write ``results_dir/index.md`` linking every folder that holds an experiment.json."""
    results_dir = Path(results_dir)
    metas = sorted(
        p
        for pattern in ("*/experiment.json", "*/*/experiment.json")
        for p in results_dir.glob(pattern)
    )
    lines = ["# Experiments\n", "| Folder | Experiment | Protocol | Axis | Variants | Seeds "]
    lines[-1] += "| Complete | Report |"
    lines.append("| :--- | :--- | :--- | :--- | ---: | ---: | ---: | :--- |")
    lines += [_index_row(results_dir, p) for p in metas]
    if not metas:
        lines.append("| (none yet) | | | | | | | |")
    index = results_dir / "index.md"
    results_dir.mkdir(parents=True, exist_ok=True)
    index.write_text("\n".join(lines) + "\n")
    return index
