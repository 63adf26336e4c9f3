"""Traversal-path figure: any grid, every registered traversal, one panel per direction."""

from __future__ import annotations

import uuid

import matplotlib.pyplot as plt
import numpy as np
import pytest

from ablations.report.traversal_figure import draw_direction, draw_paths, panels, paths_figure
from vil.traversals import TRAVERSALS, Direction, register_traversal


@pytest.fixture
def temp_traversal():
    """A traversal registered only for this test: cycle 2, two directions in block 0."""
    name = f"test_zigzag_{uuid.uuid4().hex[:8]}"
    register_traversal(name, ("snake", "col_rev"), "spiral", description="test only")
    yield name
    TRAVERSALS._entries.pop(name)


def test_panels_follow_the_schedule(temp_traversal):
    assert [d.name for _, d in panels(TRAVERSALS["alternating"])] == ["row", "row_rev"]
    assert len(panels(TRAVERSALS["quad"])) == 4 and len(panels(TRAVERSALS["uni"])) == 1
    titles = [t for t, _ in panels(TRAVERSALS[temp_traversal])]
    assert [t.splitlines()[-1] for t in titles] == ["snake", "col_rev", "spiral"]
    assert titles[0].startswith("blocks 0, 2") and titles[2].startswith("blocks 1, 3")


def test_figure_has_a_row_per_traversal_including_a_new_one(temp_traversal):
    fig = paths_figure(3, 5, TRAVERSALS.names())
    labels = [ax.get_ylabel().splitlines()[0] for ax in fig.axes if ax.get_ylabel()]
    plt.close(fig)
    assert labels == TRAVERSALS.names() and temp_traversal in labels


def test_arrows_follow_the_patch_order_on_a_non_square_grid():
    fig, ax = plt.subplots()
    draw_direction(ax, Direction("col"), 3, 5)
    order = Direction("col").patch_order(3, 5).numpy()
    starts = np.concatenate([q.get_offsets() for q in ax.collections if hasattr(q, "U")])
    plt.close(fig)
    expected = {(c, r) for r, c in zip(order[:-1] // 5, order[:-1] % 5, strict=True)}
    # Arrows start a little after each patch centre (shortened to keep heads apart).
    assert {tuple(np.round(p).astype(int)) for p in starts} == expected


def test_draw_paths_writes_png_and_pdf(tmp_path, temp_traversal):
    paths = draw_paths(tmp_path, h=3, w=5)  # default names: every registered traversal
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    few = draw_paths(tmp_path / "few", h=4, w=2, names=["bi", temp_traversal])
    assert all(p.stat().st_size > 1000 for p in few)


def test_unknown_traversal_fails_loudly(tmp_path):
    with pytest.raises(KeyError, match="valid"):
        draw_paths(tmp_path, names=["no_such_traversal"])
