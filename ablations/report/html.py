"""``report.html`` and ``index.html``: the Markdown page's blocks through Jinja2 templates
(``templates/``), self-contained: figures as data URIs, inline CSS and JS, no network."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup

from ablations.report.blocks import Block, Heading, Warnings, block_markdown, run_anchor
from ablations.report.load import Experiment
from ablations.report.render import fmt_duration
from ablations.schema.record import CSV_COLUMNS

_MD = MarkdownIt("commonmark").enable("table")
_IMG = re.compile(r'src="([^":]+\.png)"')


def _env(base: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ablations.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = lambda text: Markup(_inline_images(_MD.render(text), base))
    env.filters["inline"] = lambda text: Markup(_MD.renderInline(text))
    env.filters["data_uri"] = lambda rel: data_uri(base / rel)
    env.filters["href"] = lambda rel: html_href(base, rel)
    env.globals["kind"] = lambda block: type(block).__name__
    env.globals["markdown_of"] = block_markdown
    return env


def data_uri(path: Path) -> str:
    """A PNG as a ``data:`` URI (the page carries its figures)."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _inline_images(html: str, base: Path) -> str:
    """Images that section Markdown links (tuning, influence) embedded as data URIs."""
    return _IMG.sub(lambda m: f'src="{data_uri(base / m.group(1))}"', html)


def html_href(base: Path, rel: str) -> str:
    """A link to a Markdown page points at its HTML twin where that exists."""
    if rel.endswith(".md") and (base / rel).with_suffix(".html").exists():
        return rel[:-3] + ".html"
    return rel


def write_page(blocks: list[Block], path: Path, records: list[dict[str, Any]]) -> Path:
    """Render ``blocks`` (and the run records the run rows link to) to ``path``."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "report")
    toc = [b for b in blocks if isinstance(b, Heading) and b.level == 2 and b.anchor]
    html = _env(path.parent).get_template("report.html.j2").render(
        title=title, blocks=blocks, toc=toc, records=records,
        warned=any(isinstance(b, Warnings) for b in blocks),
    )  # fmt: skip
    path.write_text(html)
    return path


def write_index_page(table: Any, path: Path) -> Path:
    """``index.html``: the index table, links to each report's HTML page."""
    html = _env(path.parent).get_template("index.html.j2").render(title="Experiments", table=table)
    path.write_text(html)
    return path


# What the page lists of a record: its scalar fields, as runs.csv has them (one schema).
_FIELDS = CSV_COLUMNS


def run_records(exp: Experiment) -> list[dict[str, Any]]:
    """What the page shows of each run's record (result.json), keyed for the template."""
    out = []
    for r in sorted(exp.records, key=lambda r: (exp.variants.index(r.variant)
                    if r.variant in exp.variants else 99, r.seed)):  # fmt: skip
        fields = [(k, getattr(r, k)) for k in _FIELDS if getattr(r, k) not in (None, "", [], {})]
        if r.load:  # what its time and img/s were measured under (machine_load.py)
            fields.append(("load", ", ".join(f"{k} {v}" for k, v in sorted(r.load.items()))))
        time = fmt_duration(float(r.train_time_s)) if r.train_time_s is not None else "—"
        out.append({"anchor": run_anchor(r.variant, r.seed), "variant": r.variant,
                    "seed": r.seed, "state": r.state, "epochs": r.epochs_done, "time": time,
                    "fingerprint": r.fingerprint or "—", "git_rev": r.git_rev or "—",
                    "fields": fields, "config": _config(r.config)})  # fmt: skip
    return out


def _config(config: dict) -> str:
    return json.dumps(config, indent=1, sort_keys=True, default=str)
