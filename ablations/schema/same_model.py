"""Variants that are not what their names say at the model's depth (shared by ``sweep
--dry-run``, the sweep's start and the report, which read configs or run records).

A traversal whose schedule cycle is longer than the model's depth never runs some of its
directions (``quad_alternating`` on 2 blocks is row, row_rev: ``alternating``), and two
variants whose blocks and every other science key agree train the same model: their rows are
duplicates, equal to the last digit under a seed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import vil

# Keys that name the model's shape rather than being it: compared as resolved blocks instead.
_SHAPE_KEYS = ("model.traversal", "model.depth", "model.dim", "model.size", "train.seed")


def model_key(science: Mapping[str, Any], dim: int, depth: int) -> str | None:
    """What a run trains, with the traversal as the blocks it runs at ``depth`` (None when
    the traversal is not registered here)."""
    name = str(science.get("model.traversal"))
    if name not in vil.TRAVERSALS:
        return None
    traversal = vil.TRAVERSALS[name]
    rest = {k: v for k, v in science.items() if k not in _SHAPE_KEYS}
    return json.dumps([rest, dim, depth, traversal.blocks(depth)], sort_keys=True, default=str)


def short_cycle_note(name: str, depth: int) -> str | None:
    """A note when traversal ``name`` repeats less often than the model has blocks."""
    t = vil.TRAVERSALS[name] if name in vil.TRAVERSALS else None
    if t is None or t.cycle <= depth:
        return None
    ran = {d for group, _ in t.blocks(depth) for d in group}
    unused = [d for group in t.schedule for d in group if d not in ran]
    return (
        f"traversal {name} cycles over {t.cycle} blocks but the model has {depth}: "
        f"{', '.join(dict.fromkeys(unused)) or 'no direction'} never run"
    )


def same_model_notes(variants: Mapping[str, tuple[Mapping[str, Any], int, int]]) -> list[str]:
    """One note per variant that trains the same model as an earlier one, and per traversal
    cut short by the depth. ``variants``: name -> (science dict, dim, depth), in grid order."""
    notes, first = [], {}
    for name, (sci, dim, depth) in variants.items():
        cut = short_cycle_note(str(sci.get("model.traversal")), depth)
        if cut:
            notes.append(f"{name}: {cut}")
        key = model_key(sci, dim, depth)
        if key is not None and key in first:
            notes.append(
                f"{name} trains the same model as {first[key]} at depth {depth}: its rows "
                "duplicate that variant's (raise model.depth to tell them apart)"
            )
        elif key is not None:
            first[key] = name
    return notes
