"""Information-flow figures: patch influence per depth and mLSTM's implicit attention, as
heat maps on the (h, w) patch grid, one shared logarithmic colour scale per figure.

The numbers come from ``vil.influence`` and ``vil.implicit_attention`` (computed by
``ablations/influence_command.py``); this module only draws them (PNG + PDF).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import LogNorm

from ablations.report.plots import plt

STAGES = ("init", "pretrained", "trained")  # a figure set each; "pretrained NAME" in labels


def stage_kind(stage: str) -> str:
    """The figure set of a stage label: "pretrained vil-tiny" -> "pretrained"."""
    return stage.split()[0]


FLOOR = 1e-3  # colour scale: values below max * FLOOR share the lowest colour


@dataclass
class FlowResult:
    """The information-flow numbers of one model (a variant at init or after training)."""

    name: str  # variant (or traversal) name
    traversal: str
    pooling: str
    stage: str  # "init" | "pretrained NAME" (a config's published weights) | "trained"
    grid: tuple[int, int]  # (h, w) patches
    maps: dict[int, np.ndarray]  # depth -> (h, w) influence on the pooled vector
    pooled_attention: dict[int, np.ndarray]  # block (1-based) -> (h, w) pooled tokens' |A|
    query_attention: dict[int, dict[str, np.ndarray]]  # block -> query label -> (h, w) |A|
    queries: dict[str, tuple[int, int] | None]  # label -> (row, col); None: not a patch (CLS)
    # depth -> (R, h, w) maps carrying the probe error (vil.influence); None: exact or unknown
    replicates: dict[int, np.ndarray | None] = field(default_factory=dict)
    probes: int | str = 2  # per image, or "exact"
    # one row per (block, query, direction): raw |A| (before the row normalisation) and share
    attention_rows: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, float] = field(default_factory=dict)  # MiB: graph peak (+ CUDA peak)
    provenance: dict[str, Any] = field(default_factory=dict)  # the run record's identity

    @property
    def label(self) -> str:
        return f"{self.name}\n{self.pooling} pooling, {self.stage}"


def _norm(arrays: list[np.ndarray]) -> LogNorm:
    """One log scale for a figure: from max * FLOOR (or the smallest positive) to max."""
    pos = np.concatenate([a[a > 0].ravel() for a in arrays] or [np.ones(1)])
    top = float(pos.max()) if pos.size else 1.0
    low = max(float(pos.min()) if pos.size else top * FLOOR, top * FLOOR)
    return LogNorm(vmin=min(low, top / 1.0001), vmax=top)


def _cmap():
    # grey: exactly zero (masked by the log scale): no path to the readout
    return plt.get_cmap("magma").with_extremes(bad="0.75")


def _panel(ax, data: np.ndarray, norm: LogNorm, mark: tuple[int, int] | None = None):
    h, w = data.shape
    im = ax.imshow(np.ma.masked_less_equal(data, 0), cmap=_cmap(), norm=norm,
                   origin="upper", extent=(-0.5, w - 0.5, h - 0.5, -0.5))  # fmt: skip
    # no ticks: tick layout dominates the drawing time of a figure of many small panels
    ax.set_xticks([])
    ax.set_yticks([])
    if mark is not None:
        ax.plot(mark[1], mark[0], "c+", ms=8, mew=1.8)
    return im


def _weights(results: list[FlowResult]) -> str:
    """The title's line naming the weights drawn: "weights: pretrained vil-tiny"."""
    return "weights: " + ", ".join(dict.fromkeys(r.stage for r in results))


def _grid_figure(rows, row_labels, title, cbar_label, stem, marks=None) -> list[Path]:
    """Draw ``rows`` (lists of (title, (h, w) array)) with one shared colour scale."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    h, w = rows[0][0][1].shape
    side, left, top = 1.6, 2.1, 0.9  # inches: panel, row labels, title
    fig_w = left + (side + 0.35) * n_cols + 1.3  # right: colour bar, its ticks and label
    fig_h = top + (side * h / w + 0.55) * n_rows
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False, figsize=(fig_w, fig_h))
    fig.subplots_adjust(left=left / fig_w, right=1 - 1.3 / fig_w, bottom=0.45 / fig_h,
                        top=1 - top / fig_h, wspace=0.3, hspace=0.45)  # fmt: skip
    norm = _norm([a for r in rows for _, a in r])
    im = None
    for i, row in enumerate(rows):
        for j, ax in enumerate(axes[i]):
            if j >= len(row):
                ax.axis("off")
                continue
            name, data = row[j]
            im = _panel(ax, data, norm, marks[i][j] if marks else None)
            ax.set_title(name, fontsize=7)
            if i == n_rows - 1:
                ax.set_xlabel("column (0 = left)", fontsize=6, labelpad=1)
            if j == 0:
                ax.set_ylabel("row (0 = top)", fontsize=6, labelpad=1)
        box = axes[i][0].get_position()
        fig.text((left - 0.3) / fig_w, (box.y0 + box.y1) / 2, row_labels[i], ha="right",
                 va="center", fontsize=8)  # fmt: skip
    cax = fig.add_axes((1 - 1.15 / fig_w, 0.45 / fig_h, 0.12 / fig_w, 1 - (top + 0.45) / fig_h))
    fig.colorbar(im, cax=cax, extend="min").set_label(cbar_label, fontsize=8)
    fig.suptitle(title, fontsize=9, x=0.5, y=1 - 0.1 / fig_h, va="top")
    return _save(fig, stem)


def _save(fig, stem: Path) -> list[Path]:
    """PNG + PDF with the fixed margins above (no tight bounding box: one draw, not two)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=130)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def _relative(m: np.ndarray) -> np.ndarray:
    """Influence as a multiple of the uniform share (1 = average patch)."""
    total = m.sum()
    return m * (m.size / total) if total > 0 else m


def influence_figure(results: list[FlowResult], stem: Path) -> list[Path]:
    """Rows: models; columns: readout depths (1, 2, 4, ..., all blocks)."""
    rows = [[(f"{k} block{'s' if k > 1 else ''}", _relative(m)) for k, m in r.maps.items()]
            for r in results]  # fmt: skip
    title = ("Influence of each input patch on the pooled representation after k blocks\n"
             "mean over images of ||d pooled / d patch embedding||_F; brightness: a patch's "
             "influence over the map's mean (1 = average patch); grey: exactly 0")  # fmt: skip
    return _grid_figure(rows, [r.label for r in results], f"{title}; {_weights(results)}",
                        "influence / uniform share", stem)  # fmt: skip


def pooled_attention_figure(results: list[FlowResult], stem: Path) -> list[Path]:
    """Rows: models; columns: blocks; the pooled tokens' implicit attention over patches."""
    rows = [[(f"block {b}", a) for b, a in r.pooled_attention.items()] for r in results]
    title = (
        "Implicit attention of the pooled token(s) in each block\nbrightness: share of the "
        "row's |A| (|A| / row sum of |A|, per direction), mean over the block's directions, "
        "heads, images and pooled tokens"
    )
    title = f"{title}; {_weights(results)}"
    return _grid_figure(rows, [r.label for r in results], title, "share of |A| row", stem)


def query_attention_figure(results: list[FlowResult], stem: Path) -> list[Path]:
    """Rows: (model, block); columns: query tokens (corners, centre, pooled); + marks the
    query patch."""
    rows, labels, marks = [], [], []
    for r in results:
        for block, per_query in r.query_attention.items():
            rows.append([(q, a) for q, a in per_query.items()])
            marks.append([r.queries.get(q) for q in per_query])
            labels.append(f"{r.name} ({r.pooling} pooling,\n{r.stage}) block {block}")
    title = ("Implicit attention of chosen query tokens (+)\nbrightness: share of the row's "
             "|A| (per direction), mean over the block's directions, heads and images")  # fmt: skip
    return _grid_figure(rows, labels, f"{title}; {_weights(results)}", "share of |A| row",
                        stem, marks)  # fmt: skip


def write_figures(results: list[FlowResult], out_dir: Path) -> dict[str, list[Path]]:
    """Every figure, one set per stage present: ``{stem: [png, pdf]}``."""
    figs: dict[str, list[Path]] = {}
    for stage in STAGES:
        mine = [r for r in results if stage_kind(r.stage) == stage]
        if not mine:
            continue
        for stem, draw in (("influence_depth", influence_figure),
                           ("attention_pooled", pooled_attention_figure),
                           ("attention_queries", query_attention_figure)):  # fmt: skip
            figs[f"{stem}_{stage}"] = draw(mine, Path(out_dir) / f"{stem}_{stage}")
    return figs
