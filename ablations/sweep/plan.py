"""``sweep --dry-run``: the expanded trial list with parameters, FLOPs and a cost estimate.

Cost convention: training FLOPs ~ 3 x forward FLOPs (forward + backward) x images x epochs;
evaluation is not counted. FLOPs per image come from ``vil.count_flops`` (2 per multiply-add).
"""

from __future__ import annotations

from typing import Any

from ablations.schema.config import RunConfig, science
from ablations.schema.datasets import known_classes, known_train_images
from ablations.schema.same_model import same_model_notes
from ablations.train.measure import load_warning, measure_throughput
from ablations.train.record import model_shape
from ablations.train.steps import model_cost


def train_images(cfg: RunConfig, summary: Any = None) -> tuple[int | None, str]:
    """Training images per epoch (and how the number was obtained); with ``split: tune``
    less the held-out share (per class, as ablations/data/split.py; here over the total),
    unless ``describe`` counted them (its counts are the split's already)."""
    if summary is not None:
        n, how = summary.train_images, "counted in data.root" if cfg.data.root else "exact"
        return n, how  # the data checks applied the split already
    n, how = known_train_images(cfg.data)
    if n is None or cfg.data.split != "tune":
        return n, how
    return n - round(cfg.data.tune_fraction * n), f"{how}, less the held-out tuning share"


def num_classes(cfg: RunConfig, summary: Any) -> int:
    """The dataset's real class count when its folder was checked, else the one its registry
    entry declares (an image folder declares none until its folder is checked: priced with
    the ablations' 100-class head)."""
    if summary is not None:
        return summary.num_classes
    known = known_classes(cfg.data)
    return known if known is not None else UNKNOWN_CLASSES


UNKNOWN_CLASSES = 100  # head to price a dataset whose class count only its folder knows


def plan(sweep: Any, summaries: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per trial: names, parameters, FLOPs, images, epochs, estimated training FLOPs.

    ``summaries``: the data checks' result (``checks.check_data``) per data setting.
    """
    rows, cache = [], {}
    for p in sweep.grid:
        cfg = sweep.config_for(p)
        summary = (summaries or {}).get(repr(cfg.data))
        classes = num_classes(cfg, summary)
        params, flops = model_cost(cfg, classes, cache)
        images, how = train_images(cfg, summary)
        steps = (images // cfg.train.batch_size) * cfg.train.epochs if images else None
        if cfg.train.max_steps is not None and steps is not None:
            steps = min(steps, cfg.train.max_steps)
        cost = flops * 3 * cfg.train.batch_size * steps if steps is not None else None
        rows.append({
            "trial": p.name, "variant": p.variant, "seed": p.seed,
            "traversal": cfg.model.traversal, "pooling": cfg.model.pooling_name,
            "size": cfg.model.size, "img_size": cfg.data.img_size, "num_classes": classes,
            "params": params,
            "flops": flops, "train_images": images, "images_how": how,
            "epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size,
            "train_flops": cost, "train_steps": steps, "run_dir": p.run_dir,
        })  # fmt: skip
    return rows


def model_notes(sweep: Any) -> list[str]:
    """Variants of the grid that run fewer directions than their traversal names, or the
    same model as another variant, at the configured depth (``ablations.schema.same_model``)."""

    variants = {}
    for p in sweep.grid:
        if p.variant not in variants:
            cfg = sweep.config_for(p)
            variants[p.variant] = (science(cfg), *model_shape(cfg))
    return same_model_notes(variants)


def add_measured(sweep: Any, rows: list[dict[str, Any]], steps: int = 3) -> None:
    """``--measure``: time a few real train steps of each distinct model here (random images
    of the configured size) and estimate each trial's wall time from the images it will see."""

    busy = load_warning(sweep.config_for(sweep.grid[0])) if sweep.grid else None
    cache: dict[str, dict[str, Any]] = {}
    for p, row in zip(sweep.grid, rows, strict=True):
        cfg = sweep.config_for(p)
        key = repr((cfg.model, cfg.data.img_size, cfg.train.batch_size, cfg.train.micro_batch,
                    row["num_classes"]))  # fmt: skip
        if key not in cache:
            cache[key] = measure_throughput(cfg, steps, row["num_classes"])
        m = cache[key]
        images = row["train_steps"] * cfg.train.batch_size if row["train_steps"] else None
        row.update(measured_img_per_s=m["img_per_s"], device=m["device"],
                   suggested_micro_batch=m["suggested_micro_batch"],
                   est_train_hours=images / m["img_per_s"] / 3600 if images else None,
                   load_warning=busy)  # fmt: skip


def format_plan(rows: list[dict[str, Any]], header: str) -> str:
    """A plain-text table plus the total."""
    lines = [header, f"{'trial':<28}{'params':>12}{'GFLOPs/img':>12}{'images':>10}{'epochs':>8}"
             f"{'train PFLOPs':>14}"]  # fmt: skip
    for r in rows:
        cost = f"{r['train_flops'] / 1e15:.4g}" if r["train_flops"] is not None else "?"
        images = r["train_images"] if r["train_images"] is not None else "?"
        lines.append(f"{r['trial']:<28}{r['params']:>12,}{r['flops'] / 1e9:>12.4f}{images:>10}"
                     f"{r['epochs']:>8}{cost:>14}")  # fmt: skip
    known = [r["train_flops"] for r in rows if r["train_flops"] is not None]
    total = sum(known) / 1e15
    lines.append(f"{len(rows)} trials; estimated training cost {total:.4g} PFLOPs "
                 "(3 x forward FLOPs x images x epochs; eval not counted)")  # fmt: skip
    lines += _measured_lines(rows)
    if rows and rows[0]["images_how"] != "exact":
        lines.append(f"images per epoch: {rows[0]['images_how']}")
    return "\n".join(lines)


def _measured_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What ``--measure`` found: per trial img/s and hours here, and the total."""
    if not rows or "measured_img_per_s" not in rows[0]:
        return []
    out = [f"measured on {rows[0]['device']} (a few train steps of each model, eval not counted):"]
    for r in rows:
        hours = r["est_train_hours"]
        est = f"{hours:.3g} h" if hours is not None else "?"
        out.append(f"  {r['trial']:<26}{r['measured_img_per_s']:>10.1f} img/s  {est:>10}  "
                   f"micro-batch that fits: {r['suggested_micro_batch']}")  # fmt: skip
    total = sum(r["est_train_hours"] or 0 for r in rows)
    out.append(f"estimated wall time here: {total:.3g} h for {len(rows)} trials, one at a time")
    if rows[0].get("load_warning"):
        out.append(f"warning: {rows[0]['load_warning']}")
    return out
