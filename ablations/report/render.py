"""A small table model rendered to Markdown, LaTeX (booktabs) and CSV by our own code.

pandas' ``to_markdown`` needs tabulate and ``Styler.to_latex`` needs jinja2; neither is a
dependency, and we need per-cell bold and footnote marks anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

MISSING = "—"  # a cell with no measurement; explained by a footnote
_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_TEX_SYMBOLS = {
    "±": r"$\pm$",
    "—": "--",
    "†": r"$^\dagger$",
    "‡": r"$^\ddagger$",
    "−": "$-$",
    "≥": r"$\geq$",
}


@dataclass
class Cell:
    """One table cell: its text, whether it is the best value of its column, and where it
    links to ("" for nowhere)."""

    text: str
    bold: bool = False
    href: str = ""


@dataclass
class Table:
    """Headers, rows of cells, column alignment ('l' or 'r'), caption and footnotes;
    ``row_links``: per row, the HTML anchor of its run record ("" for none; HTML only)."""

    headers: list[str]
    rows: list[list[Cell]]
    align: str
    caption: str = ""
    label: str = ""
    footnotes: list[str] = field(default_factory=list)
    row_links: list[str] = field(default_factory=list)
    unranked: list[int] = field(default_factory=list)  # columns the HTML page does not sort:
    # values measured under conditions that make them not comparable (machine_load.py)


def fmt(value: float, digits: int = 2) -> str:
    """A number with fixed decimals, or the missing mark for NaN/None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    return f"{value:.{digits}f}"


def fmt_pm(mean: float, std: float, digits: int = 2) -> str:
    """``mean ± std``; the mean alone when the std is undefined (one seed)."""
    if not math.isfinite(mean):
        return MISSING
    return fmt(mean, digits) if not math.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_duration(seconds: float) -> str:
    """Seconds as s / min / h with one decimal."""
    if not math.isfinite(seconds):
        return MISSING
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def to_markdown(table: Table) -> str:
    """GitHub-flavoured Markdown, bold as ``**x**``, footnotes as lines below."""

    def cell(c: Cell) -> str:
        text = c.text.replace("|", r"\|")
        text = f"[{text}]({c.href})" if c.href else text
        return f"**{text}**" if c.bold and text != MISSING else text

    sep = ["---:" if a == "r" else ":---" for a in table.align]
    lines = ["| " + " | ".join(table.headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    if table.footnotes:
        lines += [""] + [f"{note}  " for note in table.footnotes]
    return "\n".join(lines) + "\n"


def tex_escape(text: str) -> str:
    """Escape LaTeX specials and map the few Unicode symbols we use to math mode."""
    out = "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)
    for sym, tex in _TEX_SYMBOLS.items():
        out = out.replace(sym, tex)
    return out


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""

    def cell(c: Cell) -> str:
        text = tex_escape(c.text)
        return f"\\textbf{{{text}}}" if c.bold and c.text != MISSING else text

    lines = [r"\begin{table}[t]", r"\centering"]
    if table.caption:
        lines.append(f"\\caption{{{tex_escape(table.caption)}}}")
    if table.label:
        lines.append(f"\\label{{{table.label}}}")
    lines += [f"\\begin{{tabular}}{{{table.align}}}", r"\toprule"]
    lines.append(" & ".join(tex_escape(h) for h in table.headers) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.footnotes:
        notes = r" \\ ".join(tex_escape(n) for n in table.footnotes)
        lines.append(f"\\par\\smallskip{{\\footnotesize {notes}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_table(frame: pd.DataFrame, table: Table, stem: Path) -> list[Path]:
    """Write ``stem.csv`` (raw numbers of ``frame``), ``stem.md`` and ``stem.tex``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    frame.to_csv(paths[0], index=False)
    paths[1].write_text(to_markdown(table))
    paths[2].write_text(to_latex(table))
    return paths
