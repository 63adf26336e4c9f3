"""The report page as an ordered list of blocks (headings, warnings, text, tables, figures,
run records), rendered to ``report.md`` here and to ``report.html`` by ``html.py``.

One list feeds both pages, so they hold the same content in the same order, and every number
is formatted once (the tables' ``Cell`` text, the sections' Markdown).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ablations.report.render import Table, to_markdown


@dataclass
class Heading:
    """A heading of ``level`` 1 to 3 (``#`` to ``###``); ``anchor`` is its HTML id."""

    text: str
    level: int = 2
    anchor: str = ""


@dataclass
class Warnings:
    """Lines a reader must not miss (runs trained differently, truncated runs...)."""

    lines: list[str]


@dataclass
class Text:
    """A chunk of Markdown written by a section builder (lists, small tables, sub-headings)."""

    markdown: str


@dataclass
class TableBlock:
    """A ``Table``, its caption in bold above it unless ``caption`` is False; ``anchor`` is
    its HTML id."""

    table: Table
    anchor: str = ""
    caption: bool = True


@dataclass
class Figure:
    """A figure's PNG (shown) and PDF (linked), paths relative to the page's folder."""

    title: str
    png: str
    pdf: str


@dataclass
class RunRecords:
    """Every run's record (HTML only: the anchors that run rows link to)."""

    records: list[dict[str, Any]] = field(default_factory=list)


Block = Heading | Warnings | Text | TableBlock | Figure | RunRecords


def run_anchor(variant: str, seed: object) -> str:
    """The HTML id of one run's record, e.g. ``run-uni-s0``."""
    return f"run-{variant}-s{seed}"


def block_markdown(block: Block) -> str | None:
    """The block's Markdown, or None for blocks that only the HTML page shows."""
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}\n"
    if isinstance(block, Warnings):
        return "\n>\n".join(f"> **Warning:** {w}" for w in block.lines) + "\n"
    if isinstance(block, Text):
        return block.markdown
    if isinstance(block, TableBlock):
        head = f"**{block.table.caption}**\n\n" if block.caption else ""
        return head + to_markdown(block.table)
    if isinstance(block, Figure):
        return f"### {block.title}\n\n![{block.title}]({block.png})\n\n[PDF]({block.pdf})\n"
    return None


def page_markdown(blocks: list[Block]) -> str:
    """``report.md``: the blocks' Markdown, one blank line between them."""
    return "\n".join(md for md in map(block_markdown, blocks) if md is not None)
