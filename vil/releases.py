"""Registered model releases (v1 of the ablations, v2 of ``VisionLSTM2``) and proj_down inits.

A release is the set of choices NX-AI changed between their two published models: the conv
before q and k, biases in projections and norms, the default pooling and the two outer norms'
epsilons. An init names how ``proj_down`` was initialised, since the trained models differ
from the xLSTM paper's formula.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vil.registry import Registry

RELEASES: Registry[Release] = Registry("release")
# init name -> (depth -> num_blocks of the wang init std 2 / num_blocks / sqrt(dim))
INITS: Registry[Callable[[int], int]] = Registry("init")


@dataclass(frozen=True)
class Release:
    """The parts that differ between NX-AI's v1 and v2 ViL."""

    conv: str  # conv before q/k: "causal1d" (kernel conv_kernel) or "grid2d" (3x3)
    conv_kernel: int  # width of the causal conv (the grid conv is always 3x3)
    pooling: str  # the release's default pooling
    bias: bool  # biases in proj_up, q/k/v, proj_down and every LayerNorm
    post_norm_eps: float  # the LayerNorm after the blocks
    head_norm_eps: float  # the LayerNorm on the pooled vector, before the head
    description: str = ""


RELEASES.register(
    "v1",
    Release(
        "causal1d", 4, "bilateral_avg", False, 1e-5, 1e-6,
        description="the ablations' ViL: causal conv1d, no biases (training code, v1 hub)",
    ),
)  # fmt: skip
RELEASES.register(
    "v2",
    Release(
        "grid2d", 3, "bilateral_concat", True, 1e-6, 1e-5,
        description="VisionLSTM2: 3x3 conv2d, biases in projections and norms, bilateral concat",
    ),
)  # fmt: skip

# What every published model was trained with: the training code rebuilds its block config
# with the default _num_blocks=1 and the v1 hub hard-codes 1 ("original" in VisionLSTM2).
INITS.register("paper", lambda depth: 1)
# The xLSTM formula as intended: std 2 / depth / sqrt(dim) ("original-fixed" in VisionLSTM2).
INITS.register("fixed", lambda depth: depth)
