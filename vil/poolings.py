"""Registered poolings (the paper's Table 3): sequence of tokens -> one feature vector.

A pooling knows how many extra tokens it adds to the sequence (and where), and the width of
its output, from which the classification head's input size follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vil.registry import Registry
from vil.traversals import TokenLayout

POOLINGS: Registry[Pooling] = Registry("pooling")


@dataclass(frozen=True)
class Pooling:
    """Base: subclasses pick tokens from the canonical (row-major + extras) sequence."""

    cls_token: str | None = None  # None, "first" or "middle": where a learnable CLS sits
    width_factor: int = 1  # head input = width_factor * dim
    description: str = ""

    def extra_at(self, h: int, w: int) -> tuple[int, ...]:
        """Canonical indices of the extra tokens this pooling inserts."""
        if self.cls_token is None:
            return ()
        return (0,) if self.cls_token == "first" else ((h * w) // 2,)

    def out_dim(self, dim: int) -> int:
        return self.width_factor * dim

    def __call__(self, x: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
        """x: (B, N, D) in canonical order -> (B, out_dim)."""
        raise NotImplementedError


def register_pooling(name: str):
    def wrap(cls: type[Pooling]) -> type[Pooling]:
        POOLINGS.register(name, cls())
        return cls

    return wrap


def _patch_mean(x: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    total = x.sum(dim=1)
    for pos in layout.extra_index:  # Python ints: static under torch.compile
        total = total - x[:, pos]
    return total / (layout.h * layout.w)


@register_pooling("avg")
@dataclass(frozen=True)
class AvgPooling(Pooling):
    description: str = "[AVG]: mean over patch tokens"

    def __call__(self, x, layout):
        return _patch_mean(x, layout)


@register_pooling("middle_patch")
@dataclass(frozen=True)
class MiddlePatch(Pooling):
    description: str = "Middle Patch: the patch token at row-major index h*w // 2"

    def __call__(self, x, layout):
        return x[:, layout.patch((layout.h * layout.w) // 2)]


@dataclass(frozen=True)
class ClsPooling(Pooling):
    def __call__(self, x, layout):
        return x[:, layout.extra_index[0]]


@register_pooling("middle_cls")
@dataclass(frozen=True)
class MiddleCls(ClsPooling):
    cls_token: str | None = "middle"
    description: str = "Middle [CLS]: a learnable token inserted mid-sequence; its output"


@register_pooling("first_cls")
@dataclass(frozen=True)
class FirstCls(ClsPooling):
    cls_token: str | None = "first"
    description: str = "[CLS] at the first position; its output"


def _first_last(x: torch.Tensor, layout: TokenLayout) -> tuple[torch.Tensor, torch.Tensor]:
    return x[:, layout.first_patch], x[:, layout.last_patch]


@register_pooling("bilateral_avg")
@dataclass(frozen=True)
class BilateralAvg(Pooling):
    description: str = "Bilateral [AVG]: mean of the first and last patch tokens"

    def __call__(self, x, layout):
        first, last = _first_last(x, layout)
        return (first + last) / 2


@register_pooling("bilateral_concat")
@dataclass(frozen=True)
class BilateralConcat(Pooling):
    width_factor: int = 2
    description: str = "Bilateral Concat: [first patch, last patch] (head input 2*dim)"

    def __call__(self, x, layout):
        return torch.cat(_first_last(x, layout), dim=-1)


@register_pooling("last")
@dataclass(frozen=True)
class LastPatch(Pooling):
    description: str = "the last patch token (uni-directional baseline)"

    def __call__(self, x, layout):
        return x[:, layout.last_patch]


PAPER_POOLINGS = ("avg", "middle_patch", "middle_cls", "bilateral_avg", "bilateral_concat")
