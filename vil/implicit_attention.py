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

from vil.influence import evaluating
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
    (one block at a time: all of a deep model's (N, N) matrices need not fit in memory), in
    eval mode (the model's modes restored after)."""
    with evaluating(model):
        yield from _per_block(model, images)


def _per_block(model: VisionLSTM, images: torch.Tensor) -> Iterator[BlockAttention]:
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


def row_shares(weights: torch.Tensor) -> torch.Tensor:
    """|A| of each row divided by the row's sum of |A|: the share of output token t's mixing
    weight that goes to each input token (1 over the row). Rows of |A| sum to very different
    totals (0.02-0.09 in a ViL-T) that the per-head norm after the cell mostly removes, so
    shares, not magnitudes, compare across blocks, directions and traversals."""
    a = weights.abs()
    return a / a.sum(-1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny)


def pooled_attention(block: BlockAttention, positions: list[int], share: bool = True):
    """(K, N) attention row of the query tokens ``positions`` (e.g. the pooled ones) per
    direction: the row shares (or, ``share=False``, raw |A|), mean over images, heads and
    those tokens."""
    w = block.weights[..., positions, :]
    return (row_shares(w) if share else w.abs()).mean(dim=(0, 2, 3))


def attention_summary(
    model: VisionLSTM,
    images: torch.Tensor,
    rows: dict[str, list[int]],
    blocks: set[int],
    chunk: int | None = None,
) -> dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]:
    """{(block, row label): (shares, raw)} for the 1-based ``blocks``: each a (K, N) attention
    row per direction, mean over images, heads and the label's query tokens (``rows``: label
    -> canonical positions), as row shares and as raw |A|. Images go ``chunk`` at a time."""
    n = images.size(0)
    step = n if chunk is None else chunk
    sums: dict[tuple[int, str], list[torch.Tensor]] = {}
    for i in range(0, n, step):
        part = images[i : i + step]
        for b, block in enumerate(implicit_attention(model, part), start=1):
            if b not in blocks:
                continue
            for label, pos in rows.items():
                acc = sums.setdefault((b, label), [0, 0])
                for j, share in enumerate((True, False)):  # a mean over images: weighted
                    acc[j] = acc[j] + part.size(0) * pooled_attention(block, pos, share).cpu()
    return {key: (s / n, r / n) for key, (s, r) in sums.items()}
