"""Report figures (PNG + PDF, Agg backend), one colour per variant name in all of them."""

from __future__ import annotations

import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are built by sweep workers and in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ablations.report import comparable  # noqa: E402
from ablations.report.load import Experiment, learning_curves  # noqa: E402
from ablations.report.machine_load import check as load_check  # noqa: E402
from vil.poolings import POOLINGS  # noqa: E402
from vil.traversals import TRAVERSALS  # noqa: E402

# 20 distinct colours: tab10, then the light shades of tab20.
PALETTE = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("tab20").colors[1::2])


def variant_colour(name: str) -> tuple[float, float, float]:
    """A colour fixed by the name: its registration index, else a hash of the name.

    Keyed by name (not by position in one sweep) so a variant keeps its colour in every
    figure and in every experiment's report.
    """
    for registry in (TRAVERSALS, POOLINGS):
        names = registry.names()
        if name in names and names.index(name) < len(PALETTE):
            return PALETTE[names.index(name)]
    return PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]


def save(fig: plt.Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` and close the figure."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _label(row: pd.Series) -> str:
    return row["variant"] + ("†" if row["reference"] else "")


def plot_top1(exp: Experiment, frame: pd.DataFrame, stem: Path) -> list[Path]:
    """Top-1 per variant: mean ± std over seeds, with each seed as a dot."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(frame) + 2), 4))
    for x, (_, row) in enumerate(frame.iterrows()):
        colour = variant_colour(row["variant"])
        seeds = exp.complete(row["variant"])["top1"].to_numpy()
        jitter = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else np.zeros(1)
        ax.scatter(x + jitter[: len(seeds)], seeds, s=14, color=colour, alpha=0.5, zorder=2)
        if np.isfinite(row["top1_mean"]):
            err = row["top1_std"] if np.isfinite(row["top1_std"]) else 0.0
            ax.errorbar(x, row["top1_mean"], yerr=err, fmt="o", ms=8, capsize=5, color=colour)
        else:
            ax.text(x, 0.5, "no complete run", rotation=90, ha="center", va="center",
                    transform=ax.get_xaxis_transform(), color="grey")  # fmt: skip
    ax.set_xticks(range(len(frame)), [_label(r) for _, r in frame.iterrows()], rotation=30)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"{exp.name}: top-1 per {exp.axis} (mean ± std over seeds; dots = seeds)")
    ax.grid(axis="y", alpha=0.3)
    return save(fig, stem)


def plot_tradeoff(exp: Experiment, frame: pd.DataFrame, x: str, xlabel: str, stem: Path):
    """Top-1 against a cost column (``gflops`` or ``img_per_s``), one point per variant."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    shown = frame[np.isfinite(frame[x]) & np.isfinite(frame["top1_mean"])]
    offsets = label_offsets(shown[x].to_numpy(float), shown["top1_mean"].to_numpy(float))
    for (_, row), dy in zip(shown.iterrows(), offsets, strict=True):
        err = row["top1_std"] if np.isfinite(row["top1_std"]) else 0.0
        colour = variant_colour(row["variant"])
        ax.errorbar(row[x], row["top1_mean"], yerr=err, fmt="o", ms=8, capsize=4, color=colour)
        line = {"arrowstyle": "-", "color": colour, "lw": 0.5} if dy else None
        ax.annotate(_label(row), (row[x], row["top1_mean"]), textcoords="offset points",
                    xytext=(8, dy), fontsize=9, color=colour, va="center",
                    arrowprops=line)  # fmt: skip
    if shown.empty:
        ax.text(0.5, 0.5, "no complete run with this value", ha="center", transform=ax.transAxes)
    ax.margins(x=0.2, y=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"{exp.name}: top-1 vs {xlabel}")
    ax.grid(alpha=0.3)
    return save(fig, stem)


def label_offsets(xs: np.ndarray, ys: np.ndarray, step: float = 11.0) -> list[float]:
    """Vertical label offsets (points) so that labels of nearby points do not overlap:
    points within 4% of the x range and 5% of the y range share a column of labels."""
    if len(xs) == 0:
        return []
    span_x = max(np.ptp(xs), 1e-12 + abs(xs).max() * 0.1)
    span_y = max(np.ptp(ys), 1.0)
    order = np.argsort(-ys, kind="stable")  # top label first
    offsets = [0.0] * len(xs)
    placed: list[int] = []
    for i in order:
        near = [j for j in placed if abs(xs[i] - xs[j]) < 0.04 * span_x
                and abs(ys[i] - ys[j]) < 0.05 * span_y]  # fmt: skip
        offsets[i] = -step * len(near)
        placed.append(i)
    return offsets


def plot_curves(exp: Experiment, stem: Path) -> list[Path]:
    """Val top-1 and train loss per epoch; one line per run (dashed: not complete)."""
    curves = learning_curves(exp)
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    labelled: set[str] = set()
    for (variant, _seed, state), df in curves.items():
        style = {"color": variant_colour(variant), "lw": 1.4, "alpha": 0.85}
        style["ls"] = "-" if state == "COMPLETE" else "--"
        if variant not in labelled:
            style["label"] = variant
            labelled.add(variant)
        if "val_top1" in df:
            val = df.dropna(subset=["val_top1"])
            acc.plot(val["epoch"], val["val_top1"], marker=".", **style)
        if "train_loss" in df:
            loss.plot(df["epoch"], df["train_loss"], **style)
    for ax, ylabel in ((acc, "validation top-1 (%)"), (loss, "train loss")):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if labelled:
        acc.legend(fontsize=8, title="dashed: not complete", title_fontsize=8)
    else:
        acc.text(0.5, 0.5, "no metrics.csv found", ha="center", transform=acc.transAxes)
    fig.suptitle(f"{exp.name}: learning curves (one line per seed)")
    fig.tight_layout()
    return save(fig, stem)


def all_plots(exp: Experiment, frame: pd.DataFrame, out_dir: Path) -> dict[str, list[Path]]:
    """Every report figure, keyed by a short name."""
    return {
        "top1": plot_top1(exp, frame, out_dir / "top1"),
        "top1_vs_gflops": plot_tradeoff(
            exp, frame, "gflops", "GFLOPs (forward, per image)", out_dir / "top1_gflops"
        ),
        "top1_vs_throughput": plot_tradeoff(
            exp, frame, "img_per_s", _throughput_label(exp), out_dir / "top1_throughput"
        ),
        "learning_curves": plot_curves(exp, out_dir / "learning_curves"),
    }


def _throughput_label(exp: Experiment) -> str:
    """The throughput axis says when its points were timed under too different load."""
    if load_check(exp).comparable:
        return "train throughput (img/s)"
    return "train throughput (img/s): not comparable (timed under different load)"


def plot_forest(exp: Experiment, diffs: pd.DataFrame, margin: float, stem: Path) -> list[Path]:
    """Δ top-1 to the reference per variant with its 95% CI (the difference table's numbers,
    paired or Welch as it says), the paper's ±margin shaded; rows without an interval
    (not comparable, one seed, no complete run) are marked in words, never drawn as one."""
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(diffs), 2) + 1.4))
    ax.axvspan(-margin, margin, color="0.88", zorder=0, label=f"paper's margin ±{margin} pp")
    ax.axvline(0, color="0.3", lw=0.8)
    for y, r in enumerate(diffs.itertuples()):
        colour = variant_colour(r.variant)
        if np.isfinite(r.ci_low):
            ax.errorbar(r.diff_top1, y, xerr=[[r.diff_top1 - r.ci_low], [r.ci_high - r.diff_top1]],
                        fmt="o", ms=7, capsize=4, color=colour)  # fmt: skip
            if isinstance(r.note, str) and comparable.DECLARED in r.note:  # axis + that key
                ax.annotate(r.note, (0, y), xycoords=("axes fraction", "data"), xytext=(4, 7),
                            textcoords="offset points", fontsize=8, color="0.35")  # fmt: skip
            continue
        if np.isfinite(r.diff_top1):  # one seed on a side: the point, hollow, no interval
            ax.plot(r.diff_top1, y, "o", ms=7, mfc="white", color=colour)
        why = r.method if r.method == "not comparable" else (r.note or "no interval")
        ax.annotate(why, (0, y), xycoords=("axes fraction", "data"), xytext=(4, 7),
                    textcoords="offset points", fontsize=8, color="0.35")  # fmt: skip
    ax.set_yticks(range(len(diffs)), list(diffs["variant"]))
    ax.set_ylim(len(diffs) - 0.5, -0.7)
    ax.set_xlabel(f"Δ top-1 to {exp.reference} (pp), 95% CI; hollow: no CI")
    ax.set_title(f"{exp.name}: difference to the reference")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="x", alpha=0.3)
    return save(fig, stem)
