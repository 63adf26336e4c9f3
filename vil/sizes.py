"""Model sizes by name: (dim, depth), on the same Registry as every other part."""

from __future__ import annotations

from vil.registry import Registry

SIZES: Registry[tuple[int, int]] = Registry("size")


def register_size(name: str, dim: int, depth: int) -> tuple[int, int]:
    """Add a model size (its name then works as ``model.size`` everywhere)."""
    return SIZES.register(name, (dim, depth))


# Paper sizes plus CPU-sized ones for the demo and tests.
for _name, _dim, _depth in (
    ("nano", 32, 2),  # tests: seconds on a laptop CPU
    ("micro", 64, 6),  # the demo protocol on CPU
    ("tiny", 192, 24),
    ("tiny_plus", 192, 29),
    ("small", 384, 24),
    ("small_plus", 384, 26),
    ("base", 768, 24),
):
    register_size(_name, _dim, _depth)
