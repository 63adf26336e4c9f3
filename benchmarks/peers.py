"""The field's own mLSTM implementations, as optional peers of ``vil.mlstm`` and our layer.

- ``mlstm-kernels`` (NX-AI): native PyTorch parallel and chunkwise kernels (the Triton ones
  need CUDA); keyword arguments ``q, k, v, i, f``; chunkwise needs ``S % chunk_size == 0``.
- ``xlstm`` (NX-AI): the language model's ``mLSTMLayer`` (same design as a ViL layer with one
  direction: proj_up, causal conv, headwise q/k/v, gates, cell, head norm, skip, proj_down).

Both are optional imports: a peer that is not installed is reported as skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

from vil.block import MLSTMLayer
from vil.convert import load_reference_layer
from vil.traversals import Direction, canonical_layout

KERNEL_PEERS = {  # our form -> mlstm-kernels kernels of the same form
    "parallel": ("parallel--native_autograd", "parallel--native_custbw"),
    "chunkwise": ("chunkwise--native_autograd", "chunkwise--native_custbw"),
}


def try_import(module: str) -> tuple[Any | None, str]:
    """(module, '') or (None, why it is skipped)."""
    try:
        return importlib.import_module(module), ""
    except ImportError as err:
        return None, f"{module} not installed ({err}); pip install mlstm-kernels xlstm"


def kernel_fn(name: str) -> Callable[..., torch.Tensor]:
    """An mlstm-kernels sequence kernel by its registry name, e.g. 'parallel--native_autograd'."""
    from mlstm_kernels.torch import get_mlstm_kernel

    return get_mlstm_kernel(name)


def max_rel_diff(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours - theirs| / max |ours| (normalised by the largest magnitude, not per element)."""
    ours, theirs = ours.detach().float(), theirs.detach().float()
    return float((ours - theirs).abs().max() / ours.abs().max().clamp_min(1e-30))


def our_layer(dim: int, length: int, num_heads: int = 4, cell: str = "parallel") -> MLSTMLayer:
    """Our mLSTM layer with one row-wise direction over a 1 x ``length`` token grid."""
    return MLSTMLayer(
        dim,
        directions=(Direction("row"),),
        param_sets=1,
        layout=canonical_layout(1, length),
        num_blocks=1,
        num_heads=num_heads,
        cell=cell,
    )


def xlstm_layer(dim: int, length: int, num_heads: int = 4) -> torch.nn.Module:
    """xlstm's mLSTMLayer configured like a ViL layer (expansion 2, conv 4, qkv block 4)."""
    from xlstm.blocks.mlstm.layer import mLSTMLayer, mLSTMLayerConfig

    cfg = mLSTMLayerConfig(
        embedding_dim=dim,
        context_length=length,
        num_heads=num_heads,
        proj_factor=2.0,
        conv1d_kernel_size=4,
        qkv_proj_blocksize=4,
    )
    return mLSTMLayer(cfg)


@torch.no_grad()
def copy_xlstm_into_ours(src: torch.nn.Module, dst: MLSTMLayer) -> None:
    """Load an xlstm mLSTMLayer's weights into our layer, so their outputs can be compared
    (its names are the ViL training code's: one converter, vil.convert, maps both)."""
    load_reference_layer(dst, src.state_dict())


def perturb_(module: torch.nn.Module, std: float = 0.05) -> None:
    """Add noise to every parameter so that zero-initialised gates are exercised too."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g).to(p.device) * std)
