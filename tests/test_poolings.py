"""Each pooling matches its definition on a hand-made tensor."""

from __future__ import annotations

import pytest
import torch

from vil import POOLINGS
from vil.traversals import canonical_layout

H, W, D = 2, 3, 4


def hand_made(pooling_name):
    pooling = POOLINGS[pooling_name]
    layout = canonical_layout(H, W, pooling.extra_at(H, W))
    x = torch.arange(2 * layout.length * D, dtype=torch.float32).view(2, layout.length, D)
    return pooling, layout, x


def patches(x, layout):
    return x[:, layout.patch_positions]


EXPECTED = {
    "avg": lambda x, L: patches(x, L).mean(1),
    "middle_patch": lambda x, L: patches(x, L)[:, (H * W) // 2],
    "middle_cls": lambda x, L: x[:, (H * W) // 2],
    "first_cls": lambda x, L: x[:, 0],
    "bilateral_avg": lambda x, L: (patches(x, L)[:, 0] + patches(x, L)[:, -1]) / 2,
    "bilateral_concat": lambda x, L: torch.cat([patches(x, L)[:, 0], patches(x, L)[:, -1]], -1),
    "last": lambda x, L: patches(x, L)[:, -1],
}


def test_every_registered_pooling_has_a_definition_here():
    assert set(POOLINGS.names()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pooling_matches_definition(name):
    pooling, layout, x = hand_made(name)
    out = pooling(x, layout)
    assert out.shape == (2, pooling.out_dim(D))
    assert torch.equal(out, EXPECTED[name](x, layout))


def test_cls_positions():
    assert POOLINGS["middle_cls"].extra_at(H, W) == (3,)
    assert POOLINGS["first_cls"].extra_at(H, W) == (0,)
    assert POOLINGS["avg"].extra_at(H, W) == ()
    # the hand-made middle CLS sits between patch 2 and patch 3 of the row-major grid
    layout = canonical_layout(H, W, (3,))
    assert layout.patch_positions.tolist() == [0, 1, 2, 4, 5, 6]
