"""The real train step of a config, timed on a fixed batch: images/s, peak memory, and the
largest micro-batch that fits this device (for ``sweep --dry-run --measure`` and the doctor).

The step is ``steps.train_step`` itself (mixing, autocast, compile, accumulation, clipping,
AdamW, schedule), on random images of the configured size: no dataset is needed. Several
models are timed interleaved after the same warm-up (``instruments.interleaved``: median, min and
max of the repeats); memory comes from ``instruments.measure`` (CUDA peak allocation, CPU peak of
live tensors).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from ablations.data import make_batch_mixer
from ablations.schema.config import RunConfig, per_rank_batch
from ablations.schema.datasets import known_classes
from ablations.train.instruments import cpu_busy, interleaved, measure
from ablations.train.optim import make_optimizer, make_scheduler
from ablations.train.runtime import resolve_runtime, seed_all
from ablations.train.steps import build_model, train_step

MEMORY_SHARE = 0.85  # of the device's memory a suggested micro-batch may plan to use
WARMUP = 2  # untimed rounds of one step per model before any is timed (compile, caches)
PEER_RATIO = 1.1  # equal-FLOP models' speeds may differ this much before one is flagged
REPEATS = 5  # timed rounds of one step per model: their median, min and max are reported


def num_classes_of(cfg: RunConfig) -> int:
    """Classes of the head as the dataset declares them (100 where only its folder knows;
    the head's size barely changes time or memory; a counted figure can be passed instead)."""
    known = known_classes(cfg.data)
    return known if known is not None else 100


def step_parts(
    cfg: RunConfig, steps_per_epoch: int = 1000, classes: int | None = None
) -> SimpleNamespace:
    """What ``train_step`` needs, built like ``loop._build`` but without data or DDP
    (``classes``: the head's, default ``num_classes_of``)."""

    classes = classes or num_classes_of(cfg)
    rt = resolve_runtime(cfg.train)
    seed_all(cfg.train.seed)
    model = build_model(cfg, classes).to(rt.device)
    optimizer = make_optimizer(model, cfg.train)
    return SimpleNamespace(
        rt=rt, model=model, step_model=torch.compile(model) if rt.compile else model,
        optimizer=optimizer, scheduler=make_scheduler(optimizer, cfg.train, steps_per_epoch),
        mixer=make_batch_mixer(cfg.data, classes),
    )  # fmt: skip


def fixed_batch(
    cfg: RunConfig, batch: int, device: torch.device, classes: int | None = None
) -> tuple:
    """Random normalised images and labels of the configured size (seeded)."""
    g = torch.Generator().manual_seed(cfg.train.seed)
    size = cfg.data.img_size
    images = torch.randn(batch, 3, size, size, generator=g)
    labels = torch.randint(0, classes or num_classes_of(cfg), (batch,), generator=g)
    return images.to(device), labels.to(device)


def device_memory_mib(device: torch.device) -> float:
    """Total memory of a CUDA device; on CPU the memory available now (MemAvailable)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1] / 2**20
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def _model(cfg: RunConfig, micro: int, classes: int | None) -> tuple[SimpleNamespace, Callable]:
    """The parts of ``cfg``'s step at one micro-batch and a callable doing one step."""
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, micro_batch=micro))
    parts = step_parts(cfg, classes=classes)
    images, labels = fixed_batch(cfg, per_rank_batch(cfg.train), parts.rt.device, classes)
    return parts, lambda: train_step(parts, images, labels, cfg, 0)


def _peak(cfg: RunConfig, micro: int, classes: int | None, step: Callable | None = None) -> Any:
    """Peak memory of one (already warm, when ``step`` is given) step at ``micro``."""
    if step is None:
        _, step = _model(cfg, micro, classes)
        step()  # the first step builds caches the training steps do not repeat
    return measure(step, resolve_runtime(cfg.train).device, warmup=0, repeats=1)


def load_warning(cfg: RunConfig) -> str | None:
    """Why timings of ``cfg``'s device would be unreliable now (a busy CPU), or None: the
    doctor's check. Call it before measuring: the measurement itself raises the load."""
    return cpu_busy(resolve_runtime(cfg.train).device)


def suggest_micro_batch(batch: int, points: list[tuple[int, float]], budget_mib: float) -> int:
    """Largest divisor of ``batch`` whose peak fits ``budget_mib``, on the line through the
    measured (micro-batch, peak MiB) points (memory = fixed part + per-sample part)."""
    (m1, p1), (m2, p2) = points[0], points[-1]
    per_sample = (p2 - p1) / (m2 - m1) if m2 != m1 else p2 / max(m2, 1)
    fixed = p1 - per_sample * m1
    divisors = [d for d in range(1, batch + 1) if batch % d == 0]
    if not math.isfinite(budget_mib) or per_sample <= 0:
        return batch
    fits = [d for d in divisors if fixed + per_sample * d <= budget_mib]
    return max(fits) if fits else 1


def measure_models(
    models: Sequence[tuple[RunConfig, int | None]], repeats: int = REPEATS, warmup: int = WARMUP
) -> list[dict[str, Any]]:
    """Train images/s, peak memory and a micro-batch that fits, of each ``(cfg, classes)``
    here (``classes``: the head's, e.g. counted in the data; None: ``num_classes_of``).

    All models are built first; ``warmup`` untimed rounds of one step each, then ``repeats``
    timed rounds, interleaved (``instruments.interleaved``): the same steps are excluded for each
    and no model is charged the process's start-up or a load change alone. The headline is
    the median of the repeats, their min and max the spread. Peak memory is measured after
    the timing at the configured micro-batch and at a quarter of it, and the line through
    both is extrapolated to the device's memory (MEMORY_SHARE of it).
    """
    built = []
    for cfg, classes in models:
        micro = cfg.train.micro_batch or per_rank_batch(cfg.train)
        built.append((cfg, classes, micro, *_model(cfg, micro, classes)))
    device = built[0][3].rt.device if built else torch.device("cpu")
    first, times = interleaved([b[4] for b in built], device, warmup, repeats)
    out = []
    for (cfg, classes, micro, _, step), first_s, t in zip(built, first, times, strict=True):
        m = _summary(cfg, classes, micro, _peak(cfg, micro, classes, step), first_s, t)
        out.append({**m, "warmup_steps": warmup})
    return out


def _summary(cfg: RunConfig, classes: int | None, micro: int, main: Any, first_s: float,
             times: list[float]) -> dict[str, Any]:  # fmt: skip
    """One model's figures: speed over the repeats, memory, and a micro-batch that fits."""
    batch = per_rank_batch(cfg.train)
    device = resolve_runtime(cfg.train).device
    small = max(d for d in range(1, max(micro // 4, 1) + 1) if batch % d == 0)
    probe = _peak(cfg, small, classes) if small != micro else main
    budget = MEMORY_SHARE * device_memory_mib(device)
    points = [(small, probe.peak_mib), (micro, main.peak_mib)]
    speeds = [batch / s for s in times]
    return {
        "img_per_s": batch / statistics.median(times),
        "img_per_s_min": min(speeds), "img_per_s_max": max(speeds),
        "img_per_s_repeats": speeds,
        "peak_mem_mb": main.peak_mib, "first_step_s": first_s,
        "suggested_micro_batch": suggest_micro_batch(batch, points, budget),
        "memory_budget_mb": budget, "memory_method": main.memory_method,
        "device": str(device), "per_rank_batch": batch, "micro_batch": micro,
    }  # fmt: skip


def measure_throughput(
    cfg: RunConfig, repeats: int = REPEATS, classes: int | None = None
) -> dict[str, Any]:
    """``measure_models`` of one config."""
    return measure_models([(cfg, classes)], repeats)[0]


def peer_flags(models: Sequence[dict[str, Any]]) -> list[str | None]:
    """Per measured model (``name``, ``flops``, ``img_per_s`` and its ``_min``/``_max``;
    ``peer_key``: what else must match, e.g. batch and image size): why its figure is
    suspect, or None.

    Models of equal FLOPs per image ("FLOP-peers") should train at about the same speed. One
    whose repeats' range does not overlap a peer's, and whose median differs from it by more
    than PEER_RATIO, differs by more than the spread: extra work in its implementation, or a
    skewed measurement (smaller gaps are common: flips, the optimizer over more parameters).
    """
    out = []
    for m in models:
        apart = [p for p in models if p is not m and p["flops"] == m["flops"]
                 and p.get("peer_key") == m.get("peer_key") and _apart(m, p)]  # fmt: skip
        out.append(_flag(m, apart) if apart else None)
    return out


def _apart(m: dict[str, Any], p: dict[str, Any]) -> bool:
    disjoint = p["img_per_s_max"] < m["img_per_s_min"] or p["img_per_s_min"] > m["img_per_s_max"]
    ratio = max(m["img_per_s"], p["img_per_s"]) / max(min(m["img_per_s"], p["img_per_s"]), 1e-9)
    return disjoint and ratio > PEER_RATIO


def _flag(m: dict[str, Any], apart: list[dict[str, Any]]) -> str:
    others = ", ".join(f"{p['name']} {_range(p)}" for p in apart)
    return (f"{m['name']} {_range(m)} img/s vs {others} at equal FLOPs/img: apart by more "
            "than the repeats' spread (extra work in its implementation, or the load "
            "changed; re-measure on a quiet machine before reading it as cost)")  # fmt: skip


def _range(m: dict[str, Any]) -> str:
    return f"{m['img_per_s']:.0f} ({m['img_per_s_min']:.0f}-{m['img_per_s_max']:.0f})"
