"""Information-flow numbers beside the figures: ``influence.csv`` (per model, stage and
readout depth: share of patches holding 90% of the influence, normalised entropy,
centre/border ratio, reach), ``provenance.json`` (how they were made, and the run record
of every checkpoint used) and the markdown section of the experiment's report.

The section is rebuilt from those files alone (``influence_section``), so ``report`` reads
what ``influence`` wrote and never recomputes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ablations.report.influence import STAGES, FlowResult, write_figures
from ablations.schema.record import CSV_COLUMNS
from vil.influence import map_stats

DIR = "influence"  # inside an experiment folder
CSV = "influence.csv"
PROVENANCE = "provenance.json"
FIGURES = ("influence_depth", "attention_pooled", "attention_queries")


def stats_rows(results: list[FlowResult]) -> list[dict[str, Any]]:
    """One row per (model, stage, depth)."""
    rows = []
    for r in results:
        rec = {k: r.provenance.get(k) for k in ("run_dir", "seed", "top1", "epochs_done")}
        for depth, m in r.maps.items():
            s = map_stats(torch.as_tensor(m))
            rows.append({"name": r.name, "traversal": r.traversal, "pooling": r.pooling,
                         "stage": r.stage, "depth": depth, "share90": s.share90,
                         "entropy": s.entropy, "centre_border": s.centre_border,
                         "reach": s.reach, **rec})  # fmt: skip
    return rows


def write_outputs(results: list[FlowResult], out_dir: Path, meta: dict[str, Any]) -> list[Path]:
    """Figures, CSV, provenance and ``influence.md`` into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = write_figures(results, out_dir)
    pd.DataFrame(stats_rows(results)).to_csv(out_dir / CSV, index=False)
    records = {
        f"{r.name}/{r.stage}": {k: r.provenance.get(k) for k in CSV_COLUMNS}
        for r in results
        if r.provenance.get("run_dir")
    }  # the record's scalar fields
    (out_dir / PROVENANCE).write_text(json.dumps({**meta, "records": records}, indent=2) + "\n")
    page = out_dir / "influence.md"
    page.write_text(section_markdown(out_dir, prefix=""))
    return [p for ps in figs.values() for p in ps] + [out_dir / CSV, out_dir / PROVENANCE, page]


def _fmt(x: float) -> str:
    return "—" if pd.isna(x) else f"{x:.2f}"


def _stage_table(frame: pd.DataFrame) -> list[str]:
    """Rows: models; columns: depths; cells: share90 / entropy / centre:border."""
    depths = sorted(frame["depth"].unique())
    lines = ["| Model | " + " | ".join(f"after {d}" for d in depths) + " |"]
    lines.append("| :--- |" + " ---: |" * len(depths))
    for name, g in frame.groupby("name", sort=False):
        by = {int(r.depth): r for r in g.itertuples()}
        cells = [f"{_fmt(by[d].share90)} / {_fmt(by[d].entropy)} / {_fmt(by[d].centre_border)}"
                 if d in by else "" for d in depths]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _provenance_lines(meta: dict[str, Any]) -> list[str]:
    lines = [
        f"- Inputs: {meta.get('inputs', '—')}; Jacobian norm from "
        f"{meta.get('probes', '—')} probe(s) per image; seed {meta.get('seed', '—')}."
    ]
    if meta.get("elapsed_s") is not None:
        lines.append(
            f"- Computed in {meta['elapsed_s']:.0f} s on {meta.get('device', 'cpu')} "
            f"(load average {meta.get('load', '—')}), `{meta.get('command', '')}`."
        )
    for key, rec in meta.get("records", {}).items():
        top1 = rec.get("top1")
        top1 = f"{top1:.2f}%" if isinstance(top1, float) else "—"
        lines.append(f"- {key}: run `{rec.get('run_dir')}` (seed {rec.get('seed')}, state "
                     f"{rec.get('state')}, {rec.get('epochs_done')} epochs, top-1 {top1}, "
                     f"fingerprint `{str(rec.get('fingerprint'))[:12]}`, git "
                     f"`{str(rec.get('git_rev'))[:10]}`)")  # fmt: skip
    return lines


def section_markdown(folder: Path, prefix: str = f"{DIR}/") -> str:
    """The report section from ``folder``'s files; figure links get ``prefix``."""
    folder = Path(folder)
    frame = pd.read_csv(folder / CSV)
    meta = json.loads((folder / PROVENANCE).read_text())
    parts = ["## Information flow\n",
             "Which input patches reach the pooled representation, and how strongly, after "
             "k blocks (gradient influence); and mLSTM's implicit attention (the normalised "
             "parallel-form matrix). Cells: share of patches holding 90% of the influence / "
             "normalised entropy (1 = uniform) / centre-to-border ratio. "
             f"All numbers: [{CSV}]({prefix}{CSV}).\n", *_provenance_lines(meta), ""]  # fmt: skip
    for stage in STAGES:
        mine = frame[frame["stage"] == stage]
        if mine.empty:
            continue
        parts += [f"### {'At initialisation' if stage == 'init' else 'After training'}\n"]
        parts += _stage_table(mine) + [""]
        for stem in FIGURES:
            name = f"{stem}_{stage}"
            if (folder / f"{name}.png").is_file():
                link = f"{prefix}{name}"
                parts.append(f"![{stem} ({stage})]({link}.png) [PDF]({link}.pdf)\n")
    return "\n".join(parts) + "\n"


def influence_section(exp_dir: Path) -> str:
    """The section for ``exp_dir/report.md``, or "" when ``influence`` never ran there."""
    folder = Path(exp_dir) / DIR
    if not (folder / CSV).is_file() or not (folder / PROVENANCE).is_file():
        return ""
    return section_markdown(folder)
