"""The real train step of a config, timed on a fixed batch: images/s, peak memory, and the
largest micro-batch that fits this device (for ``sweep --dry-run --measure`` and the doctor).

The step is ``steps.train_step`` itself (mixing, autocast, compile, accumulation, clipping,
AdamW, schedule), on random images of the configured size: no dataset is needed. Timing and
memory come from ``timing.measure`` (median of the timed calls; CUDA peak
allocation, CPU peak of live tensors).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from ablations.data import make_batch_mixer
from ablations.schema.config import RunConfig, per_rank_batch
from ablations.schema.datasets import known_classes
from ablations.train.optim import make_optimizer, make_scheduler
from ablations.train.runtime import resolve_runtime, seed_all
from ablations.train.steps import build_model, train_step
from ablations.train.timing import cpu_busy, measure, sync

MEMORY_SHARE = 0.85  # of the device's memory a suggested micro-batch may plan to use


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


def _timed(cfg: RunConfig, micro: int, steps: int, classes: int | None) -> dict[str, Any]:
    """First-step (compile) time, median step time and peak memory at one micro-batch."""
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, micro_batch=micro))
    parts = step_parts(cfg, classes=classes)
    images, labels = fixed_batch(cfg, per_rank_batch(cfg.train), parts.rt.device, classes)

    def step() -> torch.Tensor:
        return train_step(parts, images, labels, cfg, 0)

    t = time.perf_counter()
    step()
    sync(parts.rt.device)
    first_s = time.perf_counter() - t
    timing = measure(step, parts.rt.device, warmup=0, repeats=steps)
    return {"first_step_s": first_s, "median_s": timing.median_s, "peak_mib": timing.peak_mib,
            "memory_method": timing.memory_method, "rt": parts.rt}  # fmt: skip


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


def measure_throughput(
    cfg: RunConfig, steps: int = 3, classes: int | None = None
) -> dict[str, Any]:
    """Train images/s and peak memory of ``cfg``'s step here, and a micro-batch that fits
    (``classes``: the head's, e.g. counted in the data; default ``num_classes_of``).

    Peak memory is measured at the configured micro-batch and at a quarter of it, and the
    line through both is extrapolated to the device's memory (MEMORY_SHARE of it).
    """
    batch = per_rank_batch(cfg.train)
    micro = cfg.train.micro_batch or batch
    small = max(d for d in range(1, max(micro // 4, 1) + 1) if batch % d == 0)
    main = _timed(cfg, micro, steps, classes)
    probe = _timed(cfg, small, 1, classes) if small != micro else main
    budget = MEMORY_SHARE * device_memory_mib(main["rt"].device)
    points = [(small, probe["peak_mib"]), (micro, main["peak_mib"])]
    return {
        "img_per_s": batch / main["median_s"],
        "peak_mem_mb": main["peak_mib"],
        "first_step_s": main["first_step_s"],
        "suggested_micro_batch": suggest_micro_batch(batch, points, budget),
        "memory_budget_mb": budget,
        "memory_method": main["memory_method"],
        "device": str(main["rt"].device),
        "per_rank_batch": batch,
        "micro_batch": micro,
    }
