"""Matched rows: solve each variant's depth (or width) so that its parameters or forward FLOPs
come closest to the reference variant's (``match: params | flops`` in experiments.yaml).

The paper matched its T+/S+ rows by hand; here the solver builds small CPU models and counts
with ``vil.count_params`` / ``vil.count_flops`` (the same counters as the tables), so a model
change (e.g. a new norm) moves the solution with it. Both figures grow monotonically with
depth and width: the search gallops from a start (for depth: the affine estimate from depths
1 and 2) and bisects, so it needs a handful of builds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import vil
from ablations.schema.catalog import Experiment
from ablations.schema.config import ConfigError, RunConfig, apply, dotted
from ablations.sweep.plan import num_classes
from ablations.train.steps import model_cost

MAX_VALUE = 4096  # the search never builds a model deeper or wider than this


@dataclass(frozen=True)
class Solved:
    """A variant's solved value and what it brings."""

    by: str  # "params" | "flops"
    key: str  # model.depth | model.dim
    value: int  # the solved depth (or width)
    figure: float  # the variant's params / FLOPs at that value
    target: float  # the reference's figure

    @property
    def overrides(self) -> dict[str, Any]:
        return dotted({self.key: self.value})

    @property
    def error(self) -> float:
        """Relative difference to the target (0.01 = 1% more than the reference)."""
        return self.figure / self.target - 1.0


def measure(cfg: RunConfig, by: str, cache: dict | None = None) -> float:
    """The params or forward FLOPs of ``cfg``'s model (``cache``: one build per setting)."""
    params, flops = model_cost(cfg, num_classes(cfg, None), cache)
    return float(params if by == "params" else flops)


def closest(f: Callable[[int], float], target: float, step: int, start: int) -> int:
    """The multiple of ``step`` whose f is closest to ``target`` (f increasing): gallop from
    ``start`` until the target is bracketed, then bisect (few builds from a good start)."""
    lo = hi = max(start - start % step, step)
    stride = step
    if f(hi) < target:
        while f(hi) < target and hi < MAX_VALUE:
            lo, hi, stride = hi, hi + stride, stride * 2
    else:
        while f(lo) >= target and lo > step:
            hi, lo, stride = lo, max(lo - stride, step), stride * 2
    while hi - lo > step:  # invariant: f(lo) < target <= f(hi), or lo is the smallest
        mid = lo + (hi - lo) // (2 * step) * step
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda v: (abs(f(v) - target), v))


def depth_guess(f: Callable[[int], float], target: float) -> int:
    """Where an affine cost (every block alike) meets ``target``, from two cheap builds."""
    one, two = f(1), f(2)
    per_block = two - one
    return max(1, round(1 + (target - one) / per_block)) if per_block > 0 else 1


def _read(cfg: RunConfig, key: str) -> int:
    section, name = key.split(".")
    value = getattr(getattr(cfg, section), name)
    if value is not None:
        return int(value)
    dim, depth = vil.SIZES[cfg.model.size]
    return depth if name == "depth" else dim


def solve(
    cfg: RunConfig,
    target: float,
    by: str,
    key: str = "model.depth",
    step: int = 1,
    cache: dict | None = None,
) -> Solved:
    """The value of ``key`` that brings ``cfg``'s params/FLOPs closest to ``target``."""
    cache = {} if cache is None else cache

    def f(v: int) -> float:
        return measure(apply(cfg, dotted({key: v}), "match"), by, cache)

    start = depth_guess(f, target) if key == "model.depth" else _read(cfg, key)
    value = closest(f, target, step, start)
    return Solved(by, key, value, f(value), target)


def solve_all(
    exp: Experiment, config_of: Callable[[str], RunConfig], variants: list[str], source: str
) -> dict[str, Solved]:
    """Per variant: its solved value (the reference keeps its own, with its own figure).
    ``config_of(variant)``: the variant's config before matching (the one layering)."""
    m, cache = exp.match, {}
    ref_cfg = config_of(exp.reference)
    target = measure(ref_cfg, m.by, cache)
    out = {}
    for v in dict.fromkeys([*variants]):
        cfg = config_of(v)
        if v == exp.reference:
            out[v] = Solved(m.by, m.key, _read(cfg, m.key), target, target)
            continue
        try:
            out[v] = solve(cfg, target, m.by, m.key, m.step, cache)
        except (ValueError, RuntimeError) as e:  # a width the block layout cannot take
            where = f"{source}: experiments.{exp.name}.match: {v}"
            raise ConfigError(f"{where}: cannot build the model with {m.key}: {e}") from None
    return out
