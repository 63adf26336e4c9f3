"""Information-flow numbers beside the figures: ``influence.csv`` (per model, stage and
readout depth: share of patches holding 90% of the influence, normalised entropy,
centre/border ratio, reach, and the probe error of each: ``*_se``, ``se_rel_*``),
``attention.csv`` (raw |A| per block, query and direction), ``provenance.json`` (how they
were made, and the run record of every checkpoint used) and the markdown section of the
experiment's report.

The section is rebuilt from those files alone (``influence_section``), so ``report`` reads
what ``influence`` wrote and never recomputes it.
"""

from __future__ import annotations

import json
import math
from dataclasses import astuple
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ablations.report.influence import STAGES, FlowResult, stage_kind, write_figures
from ablations.schema.record import CSV_COLUMNS
from vil.influence import map_stats

DIR = "influence"  # inside an experiment folder
CSV = "influence.csv"
ATTENTION_CSV = "attention.csv"  # raw |A| magnitudes per block, query and direction
PROVENANCE = "provenance.json"
FIGURES = ("influence_depth", "attention_pooled", "attention_queries")
HEADINGS = {"init": "At initialisation", "pretrained": "Published weights, before training",
            "trained": "After training"}  # fmt: skip


STATS = ("share90", "entropy", "centre_border", "reach")


def _error_columns(m: np.ndarray, reps: np.ndarray | None, probes: int | str) -> dict:
    """The probe error of one map: per-patch relative SE (median, max) and each summary
    number's SE, the spread over the replicate maps (0 exact, empty with one probe)."""
    if probes == "exact":
        return {"se_rel_median": 0.0, "se_rel_max": 0.0, **{f"{k}_se": 0.0 for k in STATS}}
    if reps is None:
        return {"se_rel_median": math.nan, "se_rel_max": math.nan,
                **{f"{k}_se": math.nan for k in STATS}}  # fmt: skip
    rel = reps.std(0) / np.where(m > 0, m, np.nan)
    stats = np.array([astuple(map_stats(torch.as_tensor(r))) for r in reps])  # (R, 4)
    return {"se_rel_median": float(np.nanmedian(rel)), "se_rel_max": float(np.nanmax(rel)),
            **{f"{k}_se": float(v) for k, v in zip(STATS, stats.std(0), strict=True)}}  # fmt: skip


def stats_rows(results: list[FlowResult]) -> list[dict[str, Any]]:
    """One row per (model, stage, depth)."""
    rows = []
    for r in results:
        rec = {k: r.provenance.get(k) for k in ("run_dir", "seed", "top1", "epochs_done")}
        for depth, m in r.maps.items():
            s = map_stats(torch.as_tensor(m))
            err = _error_columns(m, r.replicates.get(depth), r.probes)
            rows.append({"name": r.name, "traversal": r.traversal, "pooling": r.pooling,
                         "stage": r.stage, "depth": depth, "share90": s.share90,
                         "entropy": s.entropy, "centre_border": s.centre_border,
                         "reach": s.reach, "probes": r.probes, **err, **rec})  # fmt: skip
    return rows


def write_outputs(results: list[FlowResult], out_dir: Path, meta: dict[str, Any]) -> list[Path]:
    """Figures, CSV, provenance and ``influence.md`` into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = write_figures(results, out_dir)
    pd.DataFrame(stats_rows(results)).to_csv(out_dir / CSV, index=False)
    att = [{"name": r.name, "traversal": r.traversal, "pooling": r.pooling, "stage": r.stage,
            **row} for r in results for row in r.attention_rows]  # fmt: skip
    pd.DataFrame(att).to_csv(out_dir / ATTENTION_CSV, index=False)
    records = {
        f"{r.name}/{r.stage}": {k: r.provenance.get(k) for k in CSV_COLUMNS}
        for r in results
        if r.provenance.get("run_dir")
    }  # the record's scalar fields
    (out_dir / PROVENANCE).write_text(json.dumps({**meta, "records": records}, indent=2) + "\n")
    page = out_dir / "influence.md"
    page.write_text(section_markdown(out_dir, prefix=""))
    tables = [out_dir / CSV, out_dir / ATTENTION_CSV, out_dir / PROVENANCE, page]
    return [p for ps in figs.values() for p in ps] + tables


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


def _probe_lines(frame: pd.DataFrame) -> list[str]:
    """The probe error, stated: per-patch SE and which summary numbers it leaves stable
    (2 SE below half the last digit shown, 0.005) or how far it moves them."""
    if "se_rel_median" not in frame or frame["se_rel_median"].isna().all():
        return ["- Probe error: not measured (one probe per image: no spread to measure)."]
    if (frame["se_rel_max"] == 0).all():
        return ["- Probe error: none (exact Jacobian, `--probes exact`)."]
    line = (f"- Probe error (the standard error the probes' own spread gives, "
            f"docs/influence.md): per patch "
            f"{frame['se_rel_median'].median():.1%} median, {frame['se_rel_max'].max():.1%} "
            "at most, of the patch's value (+-2 SE: about a 90% interval, as measured "
            "against the exact map on nano models).")  # fmt: skip
    stable, moved = [], []
    for k in STATS[:3]:
        worst = 2 * frame[f"{k}_se"].max()
        (stable if worst < 0.005 else moved).append(f"{k} +-{worst:.3f}" if worst >= 0.005
                                                    else k)  # fmt: skip
    out = [line]
    if stable:
        out.append(f"- Left stable by it (2 SE < 0.005 in every row): {', '.join(stable)}.")
    if moved:
        out.append(f"- Moved by it (largest 2 SE over the rows): {', '.join(moved)}.")
    return out


def _provenance_lines(meta: dict[str, Any]) -> list[str]:
    probes = meta.get("probes", "—")
    how = "the exact Jacobian" if probes == "exact" else f"{probes} probe(s) per image"
    lines = [f"- Inputs: {meta.get('inputs', '—')}; Jacobian norm from {how}; seed "
             f"{meta.get('seed', '—')}."]  # fmt: skip
    if meta.get("elapsed_s") is not None:
        lines.append(
            f"- Computed in {meta['elapsed_s']:.0f} s on {meta.get('device', 'cpu')} "
            f"(load average {meta.get('load', '—')}), `{meta.get('command', '')}`."
        )
    if meta.get("graph_peak_mib") is not None:
        cuda = meta.get("cuda_peak_mib")
        lines.append(
            f"- Peak memory: autograd graph {meta['graph_peak_mib']:.0f} MiB at most (one "
            f"model, {meta.get('chunk', '—')} images per graph; the tensors it saved)"
            + (f", CUDA {cuda:.0f} MiB allocated at most" if cuda is not None else "")
            + f"; process peak resident {meta.get('peak_rss_mib', 0):.0f} MiB; "
            f"{meta.get('threads', '—')} torch thread(s)."
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
             f"All numbers: [{CSV}]({prefix}{CSV}); the attention's raw |A| (before "
             f"the row normalisation the figures show): [{ATTENTION_CSV}]"
             f"({prefix}{ATTENTION_CSV}).\n", *_provenance_lines(meta),
             *_probe_lines(frame), ""]  # fmt: skip
    for stage in STAGES:
        mine = frame[frame["stage"].map(stage_kind) == stage]
        if mine.empty:
            continue
        weights = ", ".join(dict.fromkeys(mine["stage"]))  # "pretrained NAME" names NAME
        parts += [f"### {HEADINGS[stage]}" + (f" ({weights})\n" if weights != stage else "\n")]
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
