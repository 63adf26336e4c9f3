"""The report's "Tuning" section (records of ``sweep --tuned``): which parameters each row
used, the sensitivity plot (tuning top-1 against lr per variant, from the tune trials'
records in ``tune/<variant>/t<n>/``) and a warning for a best value on the edge of its range.
"""

from __future__ import annotations

from pathlib import Path

from ablations.report.load import Experiment
from ablations.report.plots import plt, save, variant_colour
from ablations.schema.record import RunRecord, read_all
from ablations.schema.tune_space import on_edge

LR = "train.lr"


def tune_records(exp: Experiment) -> list[RunRecord]:
    return [r for r in read_all(exp.exp_dir, "tune/*/*") if r.tuned]


def plot_sensitivity(records: list[RunRecord], stem: Path) -> list[Path]:
    """Tuning top-1 against lr (log x) per variant; pruned trials hollow, at their last top-1."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for v in dict.fromkeys(r.variant for r in records):
        for state, face in (("COMPLETE", None), ("PRUNED", "none")):
            mine = [r for r in records if r.variant == v and r.state == state]
            pts = [(r.tuned[LR], r.top1) for r in mine if LR in r.tuned and r.top1 is not None]
            if pts:
                xs, ys = zip(*sorted(pts), strict=True)
                c = variant_colour(v)
                ax.scatter(xs, ys, color=c, facecolors=face or c, s=24,
                           label=v if state == "COMPLETE" else f"{v} (pruned)")  # fmt: skip
    ax.set_xscale("log")
    ends = [(r.tune_ranges or {}).get(LR) for r in records]
    ends = [e for e in ends if e]
    if ends:  # the searched range: a best value on its edge shows as such
        ax.set_xlim(min(e[0] for e in ends) / 1.1, max(e[1] for e in ends) * 1.1)
        for x in {min(e[0] for e in ends), max(e[1] for e in ends)}:
            ax.axvline(x, color="0.6", linestyle=":", linewidth=1)
    ax.tick_params(axis="x", which="both", labelrotation=30)  # ranges under a decade: minor labels
    ax.set(xlabel="learning rate (train.lr, at batch 1024)", ylabel="tuning top-1 (%)")
    ax.legend(fontsize=7)
    return save(fig, stem)


def edge_warnings(records: list[RunRecord]) -> list[str]:
    """One line per (variant, key) whose best value lies in the outer 10% of its range."""
    out, seen = [], set()
    for r in records:
        for key, value in (r.tuned or {}).items():
            rng = (r.tune_ranges or {}).get(key)
            if rng is None or (r.variant, key) in seen:
                continue
            seen.add((r.variant, key))
            low, high, log = rng
            if on_edge(float(value), float(low), float(high), bool(log)):
                out.append(f"{r.variant}: best {key}={value:.3g} lies on the edge of its range "
                           f"[{low:.3g}, {high:.3g}]: widen tune.space and tune again")  # fmt: skip
    return out


def tuning_section(exp: Experiment, fig_dir: Path) -> str:
    """Markdown of the section, or "" when no row was tuned."""
    rows = [r for r in exp.records if r.tuned]
    if not rows:
        return ""
    lines = ["## Tuning\n", "Each row trained with its variant's best tune parameters (chosen on "
             "the tuning split held out of the training set, never the validation set).\n",
             "| Variant | Seed | Parameters | Trials | Pruned | Best tuning top-1 |",
             "| :--- | ---: | :--- | ---: | ---: | ---: |"]  # fmt: skip
    for r in sorted(rows, key=lambda r: (r.variant, r.seed)):
        params = ", ".join(f"{k}={v:.3g}" for k, v in r.tuned.items())
        top1 = f"{r.tune_best_top1:.2f}" if r.tune_best_top1 is not None else "—"
        lines.append(f"| {r.variant} | {r.seed} | {params} | {r.tune_trials} | "
                     f"{r.tune_pruned} | {top1} |")  # fmt: skip
    lines += [f"\n> **Warning:** {w}" for w in edge_warnings(rows)]
    trials = tune_records(exp)
    if trials:
        png, pdf = (p.relative_to(exp.write_dir).as_posix()
                    for p in plot_sensitivity(trials, fig_dir / "tune_sensitivity"))  # fmt: skip
        lines += ["", "### Sensitivity: tuning top-1 vs lr", "", f"![sensitivity]({png})", "",
                  f"[PDF]({pdf})"]  # fmt: skip
    return "\n".join(lines) + "\n"
