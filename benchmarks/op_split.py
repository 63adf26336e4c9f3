"""Where a step's time goes by kind of operation: matrix products against everything else.

One call of a step under a dispatch mode that times every ATen operator as it runs (CPU
operators are synchronous, so each one's wall time is its own): the time of every matrix
product (mm, bmm, addmm, baddbmm), the FLOPs they did (from their shapes: zero blocks
included, so the rate is what the machine gave our products), and the time of the other
operators, largest first. Why not torch.profiler: on this kind of machine its per-operator
recording inflated the short element-wise operators several-fold and hid the real split.
CPU only (on CUDA operators return before they finish).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

PRODUCTS = ("aten.mm.", "aten.bmm.", "aten.addmm.", "aten.baddbmm.")


def product_flops(name: str, args: tuple) -> float:
    """FLOPs of one matrix-product call from its tensor arguments (0 if not a product)."""
    if not name.startswith(PRODUCTS):
        return 0.0
    mats = [a for a in args if isinstance(a, torch.Tensor)]
    if name.startswith(("aten.addmm.", "aten.baddbmm.")):
        mats = mats[1:]  # the first tensor is the one added
    a, b = mats[0], mats[1]
    batch = a.shape[0] if a.dim() == 3 else 1
    return 2.0 * batch * a.shape[-2] * a.shape[-1] * b.shape[-1]


class _OpTimer(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = {}
        self.flops = 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        name = str(func)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        self.flops += product_flops(name, args)
        return out


def split(step: Callable[[], None], top: int = 6) -> dict[str, Any]:
    """Time one call of ``step`` (warm it up first) operator by operator on the CPU."""
    timer = _OpTimer()
    start = time.perf_counter()
    with timer:
        step()
    wall = time.perf_counter() - start
    prod = sum(t for n, t in timer.seconds.items() if n.startswith(PRODUCTS))
    others = {n: t for n, t in timer.seconds.items() if not n.startswith(PRODUCTS)}
    largest = sorted(others.items(), key=lambda kv: -kv[1])[:top]
    return {
        "step_s": wall,  # includes the timer's own per-operator overhead
        "products_s": prod,
        "products_gflop": timer.flops / 1e9,
        "products_gflops_per_s": timer.flops / prod / 1e9 if prod else float("nan"),
        "other_s": sum(others.values()),
        "other_largest_s": dict(largest),
    }
