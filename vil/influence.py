"""Gradient-based token influence: which input patches reach the pooled representation.

The influence of input patch ``j`` on a readout ``y`` (the pooled vector after the first
``k`` blocks, the post-blocks norm and the pooling) is the Frobenius norm of the Jacobian
``J_j = d y / d e_j`` with respect to the patch's embedding ``e_j`` (patch-embed output;
the position embedding is added, so the derivative is the same), averaged over images.

Why a Jacobian norm and not the gradient of ``||y||``: the post-blocks LayerNorm (weight 1
at init) fixes a token's norm, so for a one-token pooling (``last``, ``middle_patch``, a
CLS) ``||y||`` is constant and its gradient is zero however strongly the patches act on y.
``||J_j||_F^2 = E_u ||u^T J_j||^2`` for ``u ~ N(0, I)``: ``probes`` random projections
estimate it (one backward pass each); ``probes=None`` uses the basis vectors (exact, one
backward pass per output channel: for tests and small models).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from vil.model import VisionLSTM


def depths_for(depth: int) -> list[int]:
    """1, 2, 4, ... below ``depth``, then ``depth`` itself (the readouts per depth)."""
    out, k = [], 1
    while k < depth:
        out.append(k)
        k *= 2
    return [*out, depth]


def pooled_positions(model: VisionLSTM) -> list[int]:
    """Canonical token indices the model's pooling reads (found by differentiating it, so a
    user-registered pooling needs no declaration)."""
    n = model.layout.length
    x = torch.randn(1, n, 4, requires_grad=True)
    (grad,) = torch.autograd.grad(model.pooling(x, model.layout).pow(2).sum(), x)
    return [int(i) for i in grad[0].abs().sum(-1).nonzero().flatten()]


def _readout(model: VisionLSTM, x: torch.Tensor) -> torch.Tensor:
    return model.pooling(model.norm(x), model.layout)


def _probe_vectors(width: int, probes: int | None, batch: int, gen: torch.Generator):
    """(n, batch, width) projections: the basis (exact) or ``probes`` Gaussian ones."""
    if probes is None:
        return torch.eye(width).unsqueeze(1).expand(width, batch, width)
    return torch.randn(probes, batch, width, generator=gen)


def _jacobian_sq_norms(y: torch.Tensor, x: torch.Tensor, us: torch.Tensor, exact: bool):
    """Estimate of ``||d y_b / d x_{b, n}||_F^2`` (B, N) by backward passes of ``u . y``;
    ``us``: (n, B, width) projections, the basis (``exact``) or Gaussian probes."""
    total = torch.zeros(x.shape[:2], dtype=torch.float64, device=x.device)
    for u in us:
        (g,) = torch.autograd.grad(y, x, u.to(y), retain_graph=True)
        total += g.double().pow(2).sum(-1)
    # basis vectors: the sum is the squared norm; Gaussian probes: each one estimates it
    return total if exact else total / us.size(0)


@contextlib.contextmanager
def _frozen(model: VisionLSTM) -> Iterator[None]:
    """Parameters out of the graph while inside (restored after): the backward passes then
    skip the weight gradients, which nobody reads here."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """The model in eval mode while inside (no drop path, no dropout), each module's own
    mode restored after: the maps are of the model, not of one stochastic draw of it."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.train(mode)


@torch.no_grad()
def _start(model: VisionLSTM, images: torch.Tensor) -> torch.Tensor:
    return model.tokens(images)


def _chunks(n: int, chunk: int | None) -> list[slice]:
    """Consecutive slices of at most ``chunk`` images (None: all at once)."""
    step = n if chunk is None else chunk
    if step < 1:
        raise ValueError(f"chunk {chunk}: expected a positive number of images")
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def influence_per_depth(
    model: VisionLSTM,
    images: torch.Tensor,
    depths: list[int] | None = None,
    probes: int | None = 2,
    seed: int = 0,
    chunk: int | None = None,
) -> dict[int, torch.Tensor]:
    """{k: (h, w) map} of patch influence on the pooled readout after the first k blocks,
    mean over ``images`` of ``||d pooled / d patch embedding||_F`` (float64).

    ``chunk``: images per graph (None: all): only one chunk's graph is held at a time, and
    the probes are drawn for all images first, so the maps do not depend on it. The model
    is put in eval mode while inside (its modes restored after)."""
    depth = len(model.blocks)
    depths = depths_for(depth) if depths is None else list(depths)
    if not depths or any(not 1 <= k <= depth for k in depths):
        raise ValueError(f"depths {depths}: each must be in 1..{depth}")
    gen = torch.Generator().manual_seed(seed)
    h, w = model.layout.h, model.layout.w
    patches = model.layout.patch_positions
    sums: dict[int, torch.Tensor] = {}
    us: dict[int, torch.Tensor] = {}
    with evaluating(model), _frozen(model):
        for part in _chunks(images.size(0), chunk):
            x0 = _start(model, images[part]).requires_grad_(True)
            ys = _readouts(model, x0, depths)
            for k in depths:  # drawn in depth order for all images: as without chunks
                if k not in us:
                    us[k] = _probe_vectors(ys[k].size(-1), probes, images.size(0), gen)
                sq = _jacobian_sq_norms(ys[k], x0, us[k][:, part], probes is None)[
                    :, patches
                ]  # row-major
                sums[k] = sums.get(k, 0) + sq.sqrt().sum(0)
            del x0, ys  # this chunk's graph goes before the next one is built
    return {k: (sums[k] / images.size(0)).view(h, w).cpu() for k in depths}


def _readouts(model: VisionLSTM, x: torch.Tensor, depths: list[int]) -> dict[int, torch.Tensor]:
    ys = {}
    for i, block in enumerate(model.blocks[: max(depths)], start=1):
        x = block(x)
        if i in depths:
            ys[i] = _readout(model, x)
    return ys


def token_influence(
    model: VisionLSTM, images: torch.Tensor, depth: int, probes: int | None = None, seed: int = 0
) -> torch.Tensor:
    """(N, N) matrix, canonical order: ``[t, s]`` = mean over images of
    ``||d x_t / d e_s||_F``, x the tokens after the first ``depth`` blocks (and the norm)."""
    gen = torch.Generator().manual_seed(seed)
    x0 = _start(model, images).requires_grad_(True)
    x = x0
    with evaluating(model), _frozen(model):
        for block in model.blocks[:depth]:
            x = block(x)
        x = model.norm(x)
        rows = [
            _jacobian_sq_norms(
                x[:, t], x0, _probe_vectors(x.size(-1), probes, x.size(0), gen), probes is None
            )
            .sqrt()
            .mean(0)
            for t in range(x.size(1))
        ]
    return torch.stack(rows).cpu()


@dataclass(frozen=True)
class MapStats:
    """Summary numbers of one (h, w) influence map."""

    share90: float  # smallest share of patches holding 90% of the influence
    entropy: float  # of the normalised map, divided by log(h*w): 1 = uniform
    centre_border: float  # mean influence of the central half / of the border ring
    reach: float  # share of patches with influence above 1e-6 of the largest


def centre_border_masks(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean (h, w) masks: the central half (rows h/4..3h/4, same for columns) and the
    outermost ring of patches."""
    rows, cols = torch.arange(h).view(h, 1), torch.arange(w).view(1, w)
    centre = (rows >= h // 4) & (rows < h - h // 4) & (cols >= w // 4) & (cols < w - w // 4)
    border = (rows == 0) | (rows == h - 1) | (cols == 0) | (cols == w - 1)
    return centre & ~border if (centre & ~border).any() else centre, border


def map_stats(m: torch.Tensor) -> MapStats:
    """Share of patches holding 90%, normalised entropy, centre/border ratio and reach."""
    h, w = m.shape
    flat = m.double().flatten()
    total = float(flat.sum())
    if not total > 0:
        return MapStats(math.nan, math.nan, math.nan, 0.0)
    p = flat / total
    cum = p.sort(descending=True).values.cumsum(0)
    n90 = int((cum < 0.9 - 1e-12).sum()) + 1
    ent = float(-(p[p > 0] * p[p > 0].log()).sum()) / math.log(p.numel()) if p.numel() > 1 else 0.0
    centre, border = centre_border_masks(h, w)
    grid = p.view(h, w)
    ratio = float(grid[centre].mean() / grid[border].mean()) if grid[border].sum() > 0 else math.inf
    reach = float((flat > 1e-6 * flat.max()).double().mean())
    return MapStats(n90 / p.numel(), ent, ratio, reach)
