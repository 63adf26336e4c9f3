"""Traversal-path figure (like the paper's Figure 2), drawn from the ``TRAVERSALS`` registry.

One row per traversal; one panel per direction of each block of its schedule cycle, so a
newly registered strategy appears with no change here. Arrows follow the visiting order over
the patch grid (colour runs from start to end; jumps between non-adjacent patches are drawn
thin and faint); a green circle marks the first patch, a red square the last.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from vil.traversals import TRAVERSALS, Direction, Traversal  # noqa: E402

STEM = "traversal_paths"


def panels(tr: Traversal) -> list[tuple[str, Direction]]:
    """(title, direction) for every direction of every block of the schedule's cycle."""
    out = []
    for block in range(tr.cycle):
        dirs = tr.block_directions(block)
        if tr.cycle == 1:
            where = "every block"
        else:
            where = f"blocks {block}, {block + tr.cycle}, …"
        for k, d in enumerate(dirs):
            part = f" · dir {k + 1}/{len(dirs)}" if len(dirs) > 1 else ""
            out.append((f"{where}{part}\n{d.name}", d))
    return out


def draw_direction(ax: plt.Axes, direction: Direction, h: int, w: int) -> None:
    """Arrows along ``direction``'s visiting order over an (h, w) grid; row 0 at the top."""
    order = direction.patch_order(h, w).numpy()
    rows, cols = order // w, order % w
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    # Grid drawn as lines, not ticks: tick machinery dominates the time of a 40-panel figure.
    ax.set_xticks([])
    ax.set_yticks([])
    ax.vlines(np.arange(0.5, w - 1), -0.5, h - 0.5, color="0.85", lw=0.6)
    ax.hlines(np.arange(0.5, h - 1), -0.5, w - 0.5, color="0.85", lw=0.6)
    ax.set_aspect("equal")
    if len(order) > 1:
        x0, y0 = cols[:-1].astype(float), rows[:-1].astype(float)
        dx, dy = np.diff(cols).astype(float), np.diff(rows).astype(float)
        colour = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(dx)))
        step = np.abs(dx) + np.abs(dy) == 1
        # Shorten arrows so a head does not cover the next arrow's tail.
        for mask, width, alpha in ((step, 0.012, 1.0), (~step, 0.005, 0.45)):
            if mask.any():
                ax.quiver(x0[mask] + 0.08 * dx[mask], y0[mask] + 0.08 * dy[mask],
                          0.84 * dx[mask], 0.84 * dy[mask], color=colour[mask], alpha=alpha,
                          angles="xy", scale_units="xy", scale=1, width=width,
                          headwidth=3.5, headlength=4)  # fmt: skip
    ax.plot(cols[0], rows[0], "o", ms=9, mfc="none", mec="tab:green", mew=2.2)
    ax.plot(cols[-1], rows[-1], "s", ms=9, mfc="none", mec="tab:red", mew=2.2)


def _row_label(name: str, tr: Traversal) -> str:
    n = tr.directions_per_block
    share = f", {tr.share}" if n > 1 else ""
    return f"{name}\n{n} dir/block{share}"


def paths_figure(h: int, w: int, names: list[str]) -> plt.Figure:
    """The overview figure: one row per traversal in ``names``, one panel per direction."""
    rows = [(n, TRAVERSALS.get(n)) for n in names]  # unknown names fail with the valid ones
    if not rows:
        raise ValueError("no traversal to draw")
    n_cols = max(len(panels(tr)) for _, tr in rows)
    cell = 2.4 / max(h, w)  # inches per patch: panels of any grid get a similar size
    pw, ph = w * cell + 0.3, h * cell + 0.6  # panel + its gaps and two-line title
    left, top = 1.5, 1.1  # room for row labels; for the title and legend
    fig_w, fig_h = left + n_cols * pw, top + len(rows) * ph
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(fig_w, fig_h), squeeze=False)
    # Fixed margins instead of tight_layout: cheap and the same for every figure.
    fig.subplots_adjust(left=left / fig_w, right=1 - 0.1 / fig_w, bottom=0.1 / fig_h,
                        top=1 - top / fig_h, wspace=0.15, hspace=0.6 / (h * cell))  # fmt: skip
    for r, (name, tr) in enumerate(rows):
        items = panels(tr)
        for c, ax in enumerate(axes[r]):
            if c >= len(items):
                ax.axis("off")
                continue
            title, direction = items[c]
            draw_direction(ax, direction, h, w)
            ax.set_title(title, fontsize=8)
        axes[r][0].set_ylabel(_row_label(name, tr), fontsize=9, rotation=0, ha="right",
                              va="center", labelpad=8)  # fmt: skip
    marks = [
        Line2D([], [], marker="o", ls="", mfc="none", mec="tab:green", mew=2, label="first patch"),
        Line2D([], [], marker="s", ls="", mfc="none", mec="tab:red", mew=2, label="last patch"),
    ]
    fig.legend(handles=marks, loc="upper center", ncol=2, frameon=False, fontsize=9,
               bbox_to_anchor=(0.5, 1 - 0.35 / fig_h))  # fmt: skip
    fig.suptitle(f"Token traversal order per block, grid of {h}x{w} patches", y=1 - 0.1 / fig_h)
    return fig


def draw_paths(out_dir: Path, h: int = 6, w: int = 8, names: list[str] | None = None) -> list[Path]:
    """Write the overview figure (rows: traversals; columns: directions/blocks of the cycle).

    ``names`` defaults to every registered traversal. Returns the PNG and PDF paths.
    """
    fig = paths_figure(h, w, TRAVERSALS.names() if names is None else list(names))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{STEM}.png", out_dir / f"{STEM}.pdf"]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths
