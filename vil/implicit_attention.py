"""mLSTM's implicit attention: the normalised matrix of the parallel form, per block, head
and direction, mapped back to canonical token positions.

In the mLSTM cell's parallel form (docs/vil-facts.md), its output is ``h = A v`` with::

    A = C / (n + eps),  C = (q k^T / sqrt(d)) * exp(logD - m),  n = max(|sum_s C|, exp(-m))

so row ``t`` of ``A`` holds the weights with which output token ``t`` mixes the value
vectors of the input tokens. ``A`` is lower-triangular in the direction's scan order (the
cell is causal); mapped to canonical order it is triangular only for the identity order.
The inputs (q, k, gates) are captured from the layer's own forward (``MLSTMLayer.forward``'s
``capture`` list), so the matrix is the one the model computes, whatever the traversal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vil.mlstm import EPS, segsum
from vil.model import VisionLSTM


def attention_matrix(q, k, igate, fgate, eps: float = EPS) -> torch.Tensor:
    """(B, NH, S, S) normalised weights ``A`` with ``A @ v`` = the cell output (float64)."""
    q, k, igate, fgate = (t.double() for t in (q, k, igate, fgate))
    logD = segsum(F.logsigmoid(fgate)) + igate.unsqueeze(-2)
    m = logD.amax(dim=-1, keepdim=True)  # finite: the diagonal is
    C = (q @ k.transpose(-1, -2)) * q.size(-1) ** -0.5 * torch.exp(logD - m)
    n = torch.maximum(C.sum(-1, keepdim=True).abs(), torch.exp(-m))
    return C / (n + eps)


@dataclass
class BlockAttention:
    """One block's implicit attention, canonical positions.

    ``weights``: (B, K, NH, N, N), ``[.., t, s]`` = weight of input token s in output
    token t for direction k; ``orders``: (K, N) each direction's scan order (canonical
    index of the i-th token visited); ``captured``: the layer's cell inputs and output.
    """

    weights: torch.Tensor
    orders: torch.Tensor
    directions: tuple[str, ...]
    captured: dict[str, torch.Tensor]

    def in_scan_order(self, k: int) -> torch.Tensor:
        """Direction ``k``'s weights (B, NH, N, N) re-indexed into its scan order."""
        o = self.orders[k]
        return self.weights[:, k][..., o, :][..., :, o]


def _orders(layer) -> torch.Tensor:
    L = layer.layout
    extra = tuple(L.extra_index)
    return torch.stack([d.sequence_order(L.h, L.w, extra) for d in layer.directions])


def _to_canonical(a: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """(B, K, NH, N, N) in scan orders -> canonical: ``out[o[i], o[j]] = a[i, j]``."""
    inv = orders.argsort(dim=1)  # canonical token n is visited at step inv[n]
    rows = torch.stack([a[:, k][..., inv[k], :][..., :, inv[k]] for k in range(a.size(1))], 1)
    return rows


@torch.no_grad()
def implicit_attention(model: VisionLSTM, images: torch.Tensor) -> Iterator[BlockAttention]:
    """Run the model's blocks on ``images``, yielding each block's implicit attention in turn
    (one block at a time: all of a deep model's (N, N) matrices need not fit in memory)."""
    x = model.tokens(images)
    for block in model.blocks:
        captured: list[dict] = []
        x = block(x, capture=captured)
        (cap,) = captured
        layer = block.layer
        B, K = images.size(0), len(layer.directions)
        a = attention_matrix(cap["q"], cap["k"], cap["igate"], cap["fgate"])
        a = a.view(B, K, *a.shape[1:])
        orders = _orders(layer)
        yield BlockAttention(_to_canonical(a, orders), orders, _names(layer), cap)


def _names(layer) -> tuple[str, ...]:
    return tuple(d.name for d in layer.directions)


def pooled_attention(block: BlockAttention, positions: list[int]) -> torch.Tensor:
    """(N,) attention row of the pooled tokens: |A| averaged over images, heads and pooled
    tokens, summed over the block's directions (the layer sums their outputs)."""
    return block.weights[..., positions, :].abs().mean(dim=(0, 2, 3)).sum(0)


def query_attention(block: BlockAttention, query: int) -> torch.Tensor:
    """(N,) |A| of canonical query token ``query``: mean over images and heads, summed over
    the block's directions."""
    return block.weights[..., query, :].abs().mean(dim=(0, 2)).sum(0)
