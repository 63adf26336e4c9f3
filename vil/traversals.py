"""Token orders of an (h, w) patch grid and the registered traversal strategies.

A *direction* is an order of the grid's patches (a permutation of the row-major indices),
optionally reversed. A *strategy* is data: a cycle of per-block direction groups and a sharing
policy. Block ``i`` runs every direction of ``schedule[i % len(schedule)]``; several directions
in one block either get their own parameters (``share="separate"``) or one set (``"shared"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from vil.registry import Registry

GridOrder = Callable[[int, int], torch.Tensor]
ORDERS: Registry[GridOrder] = Registry("token order")
TRAVERSALS: Registry[Traversal] = Registry("traversal")


def _grid(h: int, w: int) -> torch.Tensor:
    """Row-major indices laid out as an (h, w) grid."""
    return torch.arange(h * w).view(h, w)


@ORDERS.register("row")
def row_order(h: int, w: int) -> torch.Tensor:
    """Row by row from the top-left: the identity on row-major tokens."""
    return torch.arange(h * w)


@ORDERS.register("col")
def col_order(h: int, w: int) -> torch.Tensor:
    """Column by column from the top-left (column-major), built from (h, w)."""
    return _grid(h, w).t().reshape(-1)


@ORDERS.register("snake")
def snake_order(h: int, w: int) -> torch.Tensor:
    """Boustrophedon: left to right on even rows, right to left on odd rows."""
    g = _grid(h, w).clone()
    g[1::2] = g[1::2].flip(-1)
    return g.reshape(-1)


@ORDERS.register("spiral")
def spiral_order(h: int, w: int) -> torch.Tensor:
    """Clockwise spiral from the top-left corner inwards."""
    g, out = _grid(h, w), []
    while g.numel():
        out.append(g[0])
        g = g[1:].t().flip(0)  # rotate the rest counter-clockwise: next side comes on top
    return torch.cat(out)


@dataclass(frozen=True)
class Direction:
    """A grid order, read forwards or backwards."""

    order: str
    reverse: bool = False

    @property
    def name(self) -> str:
        return f"{self.order}_rev" if self.reverse else self.order

    @classmethod
    def parse(cls, name: str) -> Direction:
        base = name.removesuffix("_rev")
        ORDERS.get(base)  # fail loudly on an unknown order
        return cls(base, name.endswith("_rev"))

    def patch_order(self, h: int, w: int) -> torch.Tensor:
        """Row-major patch indices in visiting order."""
        p = ORDERS.get(self.order)(h, w)
        return p.flip(0) if self.reverse else p

    def sequence_order(self, h: int, w: int, extra_at: tuple[int, ...] = ()) -> torch.Tensor:
        """Visiting order of a full token sequence.

        The canonical sequence holds the patches row-major with extra tokens (e.g. a CLS)
        inserted so that they sit at indices ``extra_at``. The forward order keeps each extra
        token at the same index of the traversal sequence; a reversed order reverses that whole
        sequence (so a middle CLS stays in the middle, a first CLS comes last).
        """
        seq = canonical_layout(h, w, extra_at)
        patch_pos = seq.patch_positions  # canonical index of each row-major patch
        order = patch_pos[ORDERS.get(self.order)(h, w)].tolist()
        for pos in seq.extra_index:  # an extra token keeps its index in the traversal sequence
            order.insert(pos, pos)
        out = torch.tensor(order, dtype=torch.long)
        return out.flip(0) if self.reverse else out


@dataclass(frozen=True)
class TokenLayout:
    """Where patches and extra tokens sit in the canonical sequence (plain ints: static
    under torch.compile)."""

    h: int
    w: int
    patch_index: tuple[int, ...]  # canonical index of each row-major patch
    extra_index: tuple[int, ...]  # canonical index of each extra token (sorted)

    @property
    def length(self) -> int:
        return len(self.patch_index) + len(self.extra_index)

    @property
    def patch_positions(self) -> torch.Tensor:
        return torch.tensor(self.patch_index, dtype=torch.long)

    @property
    def extra_positions(self) -> torch.Tensor:
        return torch.tensor(self.extra_index, dtype=torch.long)

    @property
    def first_patch(self) -> int:
        return self.patch_index[0]

    @property
    def last_patch(self) -> int:
        return self.patch_index[-1]

    def patch(self, i: int) -> int:
        """Canonical index of row-major patch ``i``."""
        return self.patch_index[i]

    def insert_extra(self, patches: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        """Patches (B, h*w, D) and extra tokens (B, n_extra, D) -> canonical (B, N, D)."""
        parts, start = [], 0
        for j, pos in enumerate(self.extra_index):  # pos counts the earlier extras too
            n_patches = pos - j - start
            parts += [patches[:, start : start + n_patches], extra[:, j : j + 1]]
            start += n_patches
        return torch.cat([*parts, patches[:, start:]], dim=1)


def canonical_layout(h: int, w: int, extra_at: tuple[int, ...] = ()) -> TokenLayout:
    """Layout of ``h*w`` row-major patches with extra tokens at indices ``extra_at``."""
    n = h * w + len(extra_at)
    if len(set(extra_at)) != len(extra_at) or any(not 0 <= p < n for p in extra_at):
        raise ValueError(f"extra token positions {extra_at} invalid for {n} tokens")
    extra = tuple(sorted(extra_at))
    return TokenLayout(h, w, tuple(i for i in range(n) if i not in extra), extra)


@dataclass(frozen=True)
class Traversal:
    """A block-design strategy: which directions each block runs and how they share weights."""

    schedule: tuple[tuple[str, ...], ...]  # cycle of per-block direction groups
    share: Literal["separate", "shared"] = "separate"  # parameters of a block's directions
    description: str = ""

    def __post_init__(self) -> None:
        if not self.schedule or any(not group for group in self.schedule):
            raise ValueError("a traversal needs at least one direction per block")
        for group in self.schedule:
            for name in group:
                Direction.parse(name)
        if self.share not in ("separate", "shared"):
            raise ValueError(f"share must be 'separate' or 'shared', got {self.share!r}")

    def block_directions(self, block: int) -> tuple[Direction, ...]:
        """Directions run by block ``block`` (0-based)."""
        return tuple(Direction.parse(n) for n in self.schedule[block % len(self.schedule)])

    def block_param_sets(self, block: int) -> int:
        """Parameter sets of block ``block``'s direction-specific parts."""
        return 1 if self.share == "shared" else len(self.schedule[block % len(self.schedule)])

    @property
    def directions_per_block(self) -> int:
        return max(len(group) for group in self.schedule)

    @property
    def param_sets(self) -> int:
        """Parameter sets per block for the direction-specific parts."""
        return 1 if self.share == "shared" else self.directions_per_block

    @property
    def cycle(self) -> int:
        """Number of blocks after which the schedule repeats."""
        return len(self.schedule)

    def blocks(self, depth: int) -> tuple[tuple[tuple[str, ...], int], ...]:
        """What a ``depth``-block model runs: per block, its directions and parameter sets.
        Two traversals with equal ``blocks(depth)`` build the same model at that depth."""
        return tuple(
            (self.schedule[b % self.cycle], self.block_param_sets(b)) for b in range(depth)
        )


def register_traversal(name: str, *schedule: tuple[str, ...] | str, **kw) -> Traversal:
    """Register a strategy; a bare string in ``schedule`` is a one-direction block."""
    groups = tuple((g,) if isinstance(g, str) else tuple(g) for g in schedule)
    return TRAVERSALS.register(name, Traversal(groups, **kw))


ROW4 = ("row", "row_rev", "col", "col_rev")
# The paper's Table 2.
register_traversal("uni", "row", description="every block row-wise from the top-left")
register_traversal("bi", ("row", "row_rev"), description="two directions, own parameters")
register_traversal(
    "bi_shared", ("row", "row_rev"), share="shared", description="two directions, one set"
)
register_traversal(
    "alternating", "row", "row_rev", description="block i (0-based): even i forward, odd i back"
)
register_traversal("quad", ROW4, description="rows and columns both ways, own parameters")
register_traversal("quad_shared", ROW4, share="shared", description="four directions, one set")
register_traversal("quad_alternating", *ROW4, description="block i runs direction i mod 4")
# Strategies the paper did not try: each is one line.
register_traversal("col_alternating", "col", "col_rev", description="column-major, alternating")
register_traversal("snake_alternating", "snake", "snake_rev", description="boustrophedon")
register_traversal("spiral_alternating", "spiral", "spiral_rev", description="spiral in, out")

PAPER_TRAVERSALS = (
    "uni",
    "bi",
    "bi_shared",
    "alternating",
    "quad",
    "quad_shared",
    "quad_alternating",
)
