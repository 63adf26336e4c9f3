"""Token orders and strategies: permutations, round trips, (h, w) correctness, registry errors."""

from __future__ import annotations

import pytest
import torch

from vil import ORDERS, TRAVERSALS, Direction, UnknownNameError
from vil.traversals import canonical_layout

GRIDS = [(8, 8), (6, 8), (3, 5), (1, 4)]


def all_directions():
    names = {
        d.name
        for t in TRAVERSALS.names()
        for b in range(TRAVERSALS[t].cycle)
        for d in TRAVERSALS[t].block_directions(b)
    }
    return sorted(names)


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g[0]}x{g[1]}")
@pytest.mark.parametrize("name", all_directions())
def test_every_order_is_a_permutation_that_round_trips(name, grid):
    h, w = grid
    direction = Direction.parse(name)
    for extra in [(), (0,), ((h * w) // 2,)]:
        perm = direction.sequence_order(h, w, extra)
        n = h * w + len(extra)
        assert sorted(perm.tolist()) == list(range(n))
        x = torch.randn(n, 3)
        assert torch.equal(x[perm][perm.argsort()], x)


def test_column_major_on_non_square_grid():
    h, w = 6, 8
    col = ORDERS["col"](h, w)
    expected = [r * w + c for c in range(w) for r in range(h)]
    assert col.tolist() == expected
    assert Direction.parse("col_rev").patch_order(h, w).tolist() == expected[::-1]


def test_snake_and_spiral_visit_neighbours():
    for order in ("snake", "spiral"):
        for h, w in GRIDS:
            p = ORDERS[order](h, w).tolist()
            pairs = zip(p, p[1:], strict=False)
            steps = [abs(a // w - b // w) + abs(a % w - b % w) for a, b in pairs]
            assert all(s == 1 for s in steps), (order, h, w)


def test_cls_token_positions_follow_the_direction():
    h, w = 2, 3  # 6 patches, a middle CLS at canonical index 3
    fwd = Direction.parse("row").sequence_order(h, w, (3,))
    rev = Direction.parse("row_rev").sequence_order(h, w, (3,))
    assert fwd.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert rev.tolist() == [6, 5, 4, 3, 2, 1, 0]
    col = Direction.parse("col").sequence_order(h, w, (3,))
    assert col[3].item() == 3  # the CLS stays in the middle of the column-major sequence
    assert canonical_layout(h, w, (3,)).patch_positions.tolist() == [0, 1, 2, 4, 5, 6]


def test_paper_strategies_have_the_paper_semantics():
    assert [d.name for d in TRAVERSALS["uni"].block_directions(5)] == ["row"]
    alt = TRAVERSALS["alternating"]
    assert [alt.block_directions(i)[0].name for i in range(4)] == ["row", "row_rev"] * 2
    qa = TRAVERSALS["quad_alternating"]
    assert [qa.block_directions(i)[0].name for i in range(5)] == [
        "row",
        "row_rev",
        "col",
        "col_rev",
        "row",
    ]
    assert TRAVERSALS["bi"].param_sets == 2 and TRAVERSALS["bi_shared"].param_sets == 1
    assert (
        TRAVERSALS["quad"].directions_per_block == 4 and TRAVERSALS["quad_shared"].param_sets == 1
    )


def test_unknown_names_fail_listing_valid_names():
    with pytest.raises(UnknownNameError, match="valid: uni, bi, bi_shared, alternating"):
        TRAVERSALS.get("zigzag")
    with pytest.raises(UnknownNameError, match="unknown token order 'diag'"):
        Direction.parse("diag_rev")
