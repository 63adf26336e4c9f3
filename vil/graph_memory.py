"""How much memory an autograd graph holds: the bytes of the tensors it saved for backward.

``GraphMeter`` counts, while it is active, every distinct storage the graph saves (each once,
parameters excluded: they live anyway) and frees the count when autograd releases it, so
``peak`` is the largest graph held at any one time. It is a property of the computation,
not of the allocator, so it is the same on every machine (used to bound and test the memory
of ``vil.influence``).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch


class _Saved:
    """What autograd stores instead of the tensor; counted until autograd drops it."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


class GraphMeter:
    """Context manager: ``with GraphMeter(model) as m: ...``; then ``m.peak`` (bytes)."""

    def __init__(self, model: torch.nn.Module | None = None) -> None:
        self._skip = (
            {p.untyped_storage().data_ptr() for p in model.parameters()} if model else set()
        )
        self._live: dict[int, list[int]] = {}  # storage pointer -> [bytes, references]
        self.current = 0
        self.peak = 0
        self._hooks: Any = None

    def _pack(self, t: torch.Tensor) -> _Saved:
        s = t.untyped_storage()
        ptr = s.data_ptr()
        saved = _Saved(t)
        if ptr in self._skip or s.nbytes() == 0:
            return saved
        entry = self._live.setdefault(ptr, [s.nbytes(), 0])
        if entry[1] == 0:
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
        entry[1] += 1
        weakref.finalize(saved, self._release, ptr)
        return saved

    def _release(self, ptr: int) -> None:
        entry = self._live[ptr]
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self._live[ptr]

    def __enter__(self) -> GraphMeter:
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda s: s.tensor)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)
