"""Where a step's time goes by kind of operation: matrix products against everything else.

One profiled call of a step (torch.profiler, shapes recorded): the self time of every matrix
product (mm, bmm, addmm, baddbmm, ...), the FLOPs they did (from their shapes: zero blocks
included, so the rate is what the machine gave our products), and the self time of the
other operators, largest first. Against the matmul bound this says how much of the gap is
the products' own rate and how much is the work between them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch.profiler import ProfilerActivity, profile

PRODUCTS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::addbmm")


def product_flops(name: str, shapes: list) -> float:
    """FLOPs of one matrix-product call from its recorded input shapes (0 if unknown)."""
    dims = [s for s in shapes if isinstance(s, list) and len(s) >= 2]
    if name in ("aten::addmm", "aten::baddbmm", "aten::addbmm"):
        dims = dims[1:]  # the first tensor is the added one
    if len(dims) < 2:
        return 0.0
    a, b = dims[0], dims[1]
    batch = math.prod(a[:-2]) if name in ("aten::bmm", "aten::baddbmm", "aten::addbmm") else 1
    return 2.0 * batch * a[-2] * a[-1] * b[-1]


def split(step: Callable[[], None], top: int = 6) -> dict[str, Any]:
    """Profile one call of ``step`` (warm it up first): product vs other self time."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    events = prof.key_averages(group_by_input_shape=True)
    prod_s = prod_flops = other_s = 0.0
    others: dict[str, float] = {}
    for e in events:
        t = e.self_cpu_time_total / 1e6
        if e.key in PRODUCTS:
            prod_s += t
            prod_flops += e.count * product_flops(e.key, e.input_shapes or [])
        else:
            other_s += t
            others[e.key] = others.get(e.key, 0.0) + t
    largest = sorted(others.items(), key=lambda kv: -kv[1])[:top]
    return {
        "products_s": prod_s,
        "products_gflop": prod_flops / 1e9,
        "products_gflops_per_s": prod_flops / prod_s / 1e9 if prod_s else float("nan"),
        "other_s": other_s,
        "other_largest_s": dict(largest),
    }
