"""``sweep --dry-run``: the expanded trial list with parameters, FLOPs and a cost estimate.

Cost convention: training FLOPs ~ 3 x forward FLOPs (forward + backward) x images x epochs;
evaluation is not counted. FLOPs per image come from ``vil.count_flops`` (2 per multiply-add).
"""

from __future__ import annotations

from typing import Any

from ablations.schema.config import RunConfig, science
from ablations.schema.datasets import KINDS, known_classes, known_train_images
from ablations.schema.same_model import same_model_notes
from ablations.train.instruments import load_now
from ablations.train.measure import REPEATS, load_warning, measure_models, peer_flags
from ablations.train.record import model_shape
from ablations.train.runtime import resolve_runtime
from ablations.train.steps import model_cost

FILES_HOW = ("files listed in data.root, decoded at run time (one that cannot be decoded is "
             "skipped or replaced then)")  # fmt: skip


def train_images(cfg: RunConfig, summary: Any = None) -> tuple[int | None, str]:
    """Training images per epoch (and how the number was obtained); with ``split: tune``
    less the held-out share (per class, as ablations/data/split.py; here over the total),
    unless ``describe`` counted them (its counts are the split's already)."""
    if summary is not None:  # the data checks applied the split already
        if KINDS[cfg.data.dataset].family == "files":  # listed, not opened: say so
            return summary.train_images, f"{summary.train_images} {FILES_HOW}"
        return summary.train_images, "counted in data.root" if cfg.data.root else "exact"
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


def _model_key(cfg: RunConfig, classes: int) -> tuple[str, str]:
    """What makes two trials' timings one measurement (the model and the step), and what
    besides FLOPs/img makes two models' timings comparable (the step's shape and device)."""
    peer = repr((cfg.data.img_size, cfg.train.batch_size, cfg.train.micro_batch,
                 cfg.train.device, cfg.train.precision, cfg.train.compile))  # fmt: skip
    return repr((cfg.model, classes)) + peer, peer


def add_measured(sweep: Any, rows: list[dict[str, Any]], repeats: int = REPEATS) -> None:
    """``--measure``: time real train steps of each distinct model here (random images of the
    configured size; all models warmed up, then timed interleaved: ``measure_models``),
    estimate each trial's wall time from the images it will see, flag a model whose speed
    differs from its equal-FLOP peers' by more than the repeats' spread, and state the load
    (1-minute average before and after, cores, threads)."""

    if not sweep.grid:
        return
    cfgs = [sweep.config_for(p) for p in sweep.grid]
    busy = load_warning(cfgs[0])
    keys = [_model_key(cfg, row["num_classes"]) for cfg, row in zip(cfgs, rows, strict=True)]
    distinct: dict[str, int] = {}  # each model's first trial, in the grid's order
    for i, (key, _) in enumerate(keys):
        distinct.setdefault(key, i)
    device = resolve_runtime(cfgs[0].train).device
    load = load_now(device)
    found = measure_models([(cfgs[i], rows[i]["num_classes"]) for i in distinct.values()],
                           repeats)  # fmt: skip
    load["load_1m_after"] = load_now(device)["load_1m"]
    for m, i in zip(found, distinct.values(), strict=True):
        m.update(name=rows[i]["variant"], flops=rows[i]["flops"], peer_key=keys[i][1])
    for m, flag in zip(found, peer_flags(found), strict=True):
        m["flag"] = flag
    by_key = dict(zip(distinct, found, strict=True))
    for cfg, row, (key, _) in zip(cfgs, rows, keys, strict=True):
        m = by_key[key]
        images = row["train_steps"] * cfg.train.batch_size if row["train_steps"] else None
        row.update(measured_img_per_s=m["img_per_s"], measured_img_per_s_min=m["img_per_s_min"],
                   measured_img_per_s_max=m["img_per_s_max"], measured_repeats=repeats,
                   warmup_steps=m["warmup_steps"], device=m["device"],
                   suggested_micro_batch=m["suggested_micro_batch"],
                   est_train_hours=images / m["img_per_s"] / 3600 if images else None,
                   measure_flag=m["flag"], measured_load=load, load_warning=busy)  # fmt: skip


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
    if rows and rows[0]["images_how"].endswith(FILES_HOW):  # the head is the folder's
        lines.append(f"classes: {rows[0]['num_classes']}, counted in data.root (the model's head)")
    return "\n".join(lines)


def _measured_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What ``--measure`` found: per trial img/s (median and range of the repeats) and hours
    here, the total beside the load it was measured under, and the flags."""
    if not rows or "measured_img_per_s" not in rows[0]:
        return []
    r0 = rows[0]
    out = [
        f"measured on {r0['device']}: {r0['warmup_steps']} warm-up steps of each model, then "
        f"{r0['measured_repeats']} interleaved timed steps (median, range); eval not counted"
    ]
    for r in rows:
        hours = r["est_train_hours"]
        est = f"{hours:.3g} h" if hours is not None else "?"
        spread = f"({r['measured_img_per_s_min']:.0f}-{r['measured_img_per_s_max']:.0f})"
        out.append(
            f"  {r['trial']:<26}{r['measured_img_per_s']:>10.1f} img/s {spread:>13}  "
            f"{est:>10}  micro-batch that fits: {r['suggested_micro_batch']}"
        )
    total = sum(r["est_train_hours"] or 0 for r in rows)
    out.append(
        f"estimated wall time here: {total:.3g} h for {len(rows)} trials, one at a time, "
        f"measured under {load_text(r0['measured_load'])}"
    )
    out += [f"flag: {f}" for f in dict.fromkeys(r["measure_flag"] for r in rows) if f]
    if r0.get("load_warning"):
        out.append(f"warning: {r0['load_warning']}")
    return out


def load_text(load: dict[str, Any]) -> str:
    """``load_now``'s figures in words: '1-min load 0.50 -> 1.20 on 2 cores, 1 thread here'."""
    if load.get("load_1m") is None:
        return f"unknown load on {load['cores']} cores, {load['threads']} thread(s) here"
    return (
        f"1-min load average {load['load_1m']:.2f} -> {load['load_1m_after']:.2f} on "
        f"{load['cores']} cores, {load['threads']} thread(s) here"
    )
