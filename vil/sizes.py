"""Model sizes by name: (dim, depth)."""

# name -> (dim, depth). Paper sizes plus CPU-sized ones for the demo and tests.
SIZES: dict[str, tuple[int, int]] = {
    "nano": (32, 2),  # tests: seconds on a laptop CPU
    "micro": (64, 6),  # the demo protocol on CPU
    "tiny": (192, 24),
    "tiny_plus": (192, 29),
    "small": (384, 24),
    "small_plus": (384, 26),
    "base": (768, 24),
}
