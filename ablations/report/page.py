"""Assemble ``report.md`` and ``report.html`` (header, tables, findings, figures, run status)
and ``index.md`` / ``index.html``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablations.report import comparable, setting
from ablations.report.blocks import (
    Block,
    Figure,
    Heading,
    TableBlock,
    Text,
    Warnings,
    block_markdown,
    page_markdown,
    run_anchor,
)
from ablations.report.findings import (
    AXIS_FINDINGS,
    MARGIN,
    findings,
    findings_markdown,
    findings_rows,
)
from ablations.report.html import run_records, write_index_page, write_page
from ablations.report.influence_table import influence_section
from ablations.report.load import Experiment, failures, load_experiment
from ablations.report.plots import all_plots, plot_forest
from ablations.report.render import MISSING, Cell, Table, to_markdown, write_table
from ablations.report.tables import diff_frame, diff_table, main_frame, main_table, status_table
from ablations.report.traversal_figure import draw_paths
from ablations.report.tuning import tuning_section
from vil.traversals import TRAVERSALS

PAPER = "Vision-LSTM (Alkin et al., 2024, arXiv 2406.04303)"
FIG_DIR = "figures"


def _kv(value: object) -> str:
    return "—" if value in (None, "", [], {}) else str(value)


def warning_lines(exp: Experiment) -> list[str]:
    """The page's first lines: runs not trained alike (key by key, per run), truncated runs,
    and other setting differences."""
    lines = comparable.warnings(exp) + _truncated_warnings(exp) + setting.setting_lines(exp)[1]
    return lines + setting.model_notes(exp)  # variants that trained the same model, unused dirs


def top_warnings(exp: Experiment) -> str:
    """``warning_lines`` as the Markdown page shows them; "" when there is nothing to warn."""
    lines = warning_lines(exp)
    return block_markdown(Warnings(lines)) if lines else ""


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


def _fig(title: str, paths: list[Path], root: Path) -> Figure:
    png, pdf = (p.relative_to(root).as_posix() for p in paths)
    return Figure(title, png, pdf)


def _failures(exp: Experiment) -> list[Block]:
    bad = failures(exp)
    if bad.empty:
        return [Text("No failed run.\n")]
    rows, links = [], []
    for r in bad.itertuples():
        reason = " ".join(str(r.fail_reason).split()).replace("|", r"\|")
        reason = reason if len(reason) <= 300 else reason[:300] + " …"
        seed = MISSING if pd.isna(r.seed) else int(r.seed)
        epochs = MISSING if pd.isna(r.epochs_done) else int(r.epochs_done)
        cells = [r.variant, str(seed), r.state, str(epochs), reason.replace(r"\|", "|")]
        rows.append([Cell(c) for c in cells])
        links.append("" if seed == MISSING else run_anchor(r.variant, seed))
    head = ["Variant", "Seed", "State", "Epochs done", "Reason"]
    table = Table(head, rows, "lrlrl", row_links=links)
    full = "Full reasons: [table_failures.csv](table_failures.csv).\n"
    return [TableBlock(table, "failures", caption=False), Text(full)]


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
    paths = {"traversal_paths": paths} if paths else {}
    forest = {"forest": plot_forest(exp, diffs, MARGIN, out / FIG_DIR / "forest")}

    blocks = report_blocks(exp, tables, found, forest | figs | paths, out)
    page = out / "report.md"
    page.write_text(page_markdown(blocks))
    write_page(blocks, out / "report.html", run_records(exp))
    return page


_TITLES = {"top1": "Top-1 per variant", "top1_vs_gflops": "Top-1 vs GFLOPs (forward, per image)"}
_TITLES |= {"top1_vs_throughput": "Top-1 vs throughput", "learning_curves": "Learning curves"}
_TITLES |= {"traversal_paths": "Traversal paths"}
_TITLES["forest"] = "Difference to the reference (95% CI, the paper's margin shaded)"


def report_blocks(exp: Experiment, tables: dict, found: list, figs: dict, exp_dir: Path):
    """The page, in order: warnings, setting, results, differences, findings, figures,
    tuning, information flow, run status; ``tables``: key -> (frame, Table)."""
    blocks: list[Block] = [Heading(f"{exp.name}: ViL {exp.axis} ablation report", 1)]
    lines = warning_lines(exp)
    blocks += [Warnings(lines)] if lines else []
    blocks += [Heading("Setting", anchor="setting"), Text(header(exp))]
    blocks += [Heading("Results", anchor="results"), TableBlock(tables["main"][1], "main")]
    blocks += [Text("Files: table_main.{md,tex,csv}.\n")]
    blocks += [Heading("Difference to the reference", anchor="difference")]
    paper = exp.axis in AXIS_FINDINGS  # the paper made claims about this axis
    what = "paper's claims vs. this sweep" if paper else "vs. the reference"
    blocks += [
        TableBlock(tables["diff"][1], "diff"),
        Heading(f"Findings ({what})", anchor="findings"),
    ]
    blocks += [Text(findings_markdown(found, "Claim (paper)" if paper else "Comparison"))]
    blocks.append(Heading("Figures", anchor="figures"))
    blocks += [_fig(_TITLES[k], v, exp_dir) for k, v in figs.items()]
    blocks.append(Text(tuning_section(exp, exp_dir / FIG_DIR)))
    blocks.append(Text(influence_section(exp_dir)))  # "" until `vil-ablate influence EXP` ran
    blocks += [Heading("Run status", anchor="status"), TableBlock(tables["status"][1], "status")]
    blocks += [Heading("Failures", 3, "failures-heading"), *_failures(exp)]
    return blocks


_INDEX_HEAD = ["Folder", "Experiment", "Protocol", "Axis", "Variants", "Seeds", "Complete"]
_INDEX_HEAD += ["States", "Report"]


def _index_row(results_dir: Path, meta_path: Path) -> list[Cell]:
    folder = meta_path.parent
    rel = folder.relative_to(results_dir).as_posix()
    try:
        exp = load_experiment(folder)
    except (ValueError, OSError) as err:  # a broken folder is listed, not hidden
        return [Cell(rel, href=f"{rel}/"), Cell(f"unreadable: {err}")] + [Cell("")] * 7
    states = exp.runs["state"]
    done = f"{int((states == 'COMPLETE').sum())}/{len(states)}"
    counts = ", ".join(f"{n} {s.lower()}" for s, n in states.value_counts().items())
    built = (folder / "report.md").exists()
    report = Cell("report", href=f"{rel}/report.md") if built else Cell("not built")
    cells = [Cell(rel, href=f"{rel}/"), Cell(exp.name), Cell(_kv(exp.meta.get("protocol")))]
    cells += [Cell(exp.axis), Cell(str(len(exp.variants))), Cell(str(len(exp.seeds)))]
    return cells + [Cell(done), Cell(counts), report]


def write_index(results_dir: Path) -> Path:
    """Write ``results_dir/index.md`` and ``index.html`` linking every folder that holds an
    experiment.json, with its state counts."""
    results_dir = Path(results_dir)
    metas = sorted(
        p
        for pattern in ("*/experiment.json", "*/*/experiment.json")
        for p in results_dir.glob(pattern)
    )
    rows = [_index_row(results_dir, p) for p in metas]
    rows = rows or [[Cell("(none yet)")] + [Cell("")] * (len(_INDEX_HEAD) - 1)]
    table = Table(_INDEX_HEAD, rows, "llllrrrll", "Experiments")
    index = results_dir / "index.md"
    results_dir.mkdir(parents=True, exist_ok=True)
    index.write_text("# Experiments\n\n" + to_markdown(table))
    write_index_page(table, results_dir / "index.html")
    return index
