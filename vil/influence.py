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
backward pass per output channel: ``width / probes`` times the probes' cost).

The probe error is stated, not hidden (``influence_estimates``): each image's probes spread
around their mean, which gives (per patch, pooled over the images) the law of that mean;
``REPLICATES`` maps drawn from it carry the estimate's error: their spread per patch is the
map's standard error, and the summary numbers' spread over them is theirs
(``ablations/report/influence_table.py``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
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


def _per_probe_sq_norms(y: torch.Tensor, x: torch.Tensor, us: torch.Tensor, exact: bool):
    """``||u_p . d y_b / d x_{b, n}||^2`` per probe, (n, B, N) float64, by one backward pass
    of ``u . y`` each; ``exact`` (``us`` the basis): their sum, the squared norm (1, B, N)."""
    out = []
    for u in us:
        (g,) = torch.autograd.grad(y, x, u.to(y), retain_graph=True)
        sq = g.double().pow(2).sum(-1)
        if exact and out:
            out[0] += sq
        else:
            out.append(sq)
    return torch.stack(out)


def _jacobian_sq_norms(y: torch.Tensor, x: torch.Tensor, us: torch.Tensor, exact: bool):
    """Estimate of ``||d y_b / d x_{b, n}||_F^2`` (B, N): the basis vectors' sum (exact) or
    the mean of the Gaussian probes' (each one estimates it)."""
    per = _per_probe_sq_norms(y, x, us, exact)
    return per[0] if exact else per.mean(0)


REPLICATES = 200  # replicate maps: a summary number's spread to about 5% of itself


@dataclass(frozen=True)
class InfluenceEstimate:
    """One readout's influence map and its probe error.

    ``map``: (h, w) mean over images of the estimated ``||J||_F``; ``replicates``: (R, h, w)
    maps with the estimate's probe error (wild bootstrap over the probes), None where there
    is none (``exact``) or it cannot be told (one probe: no spread to measure)."""

    map: torch.Tensor
    replicates: torch.Tensor | None
    exact: bool

    @property
    def se(self) -> torch.Tensor:
        """(h, w) standard error of ``map`` from the probes: 0 exact, NaN with one probe."""
        if self.exact:
            return torch.zeros_like(self.map)
        if self.replicates is None:
            return torch.full_like(self.map, math.nan)
        return self.replicates.std(0)


def _estimate(sq: torch.Tensor, exact: bool, seed: int) -> tuple:
    """(map, replicates) over the patches from the per-probe squared norms (n, B, N).

    An image's probe mean ``S`` of ``||u^T J||^2`` is, for Gaussian probes, a weighted sum of
    chi-squares; its Satterthwaite (moment-matched Gamma) law has shape ``n / kappa``, kappa
    the relative variance of one probe (in (0, 2]; 2: J of rank one), estimated per patch
    from the images' probe spreads. A replicate draws each image's ``S`` from that law
    (independently per patch) around the estimate, so the replicates' spread is the map's
    probe error. Measured on nano models (tests/test_influence_error.py): 2 probes, 16
    images, +-2 SE covers the exact map at about 90% of the patches. Not bias-corrected:
    ``sqrt(S)`` is low by at most the rank-one factor (0.886 with 2 probes); measured -1% to
    +0.3% on the map (the spectrum of J is far from rank one there)."""
    if exact:
        return sq[0].sqrt().mean(0), None
    n = sq.size(0)
    mean = sq.mean(0)  # (B, N): each image's unbiased estimate of ||J||^2
    if n < 2:  # no spread to measure: the plain estimate, its error unknown
        return mean.sqrt().mean(0), None
    # kappa from the scale-free ratio var / S^2 of each image (equal weight per image, so one
    # image of large ||J|| does not speak for the rest): for Gamma probes its mean is
    # n kappa / (n + kappa); pooled per patch over the images, then inverted
    r = (sq.var(0) / mean.pow(2).clamp_min(torch.finfo(torch.float64).tiny)).mean(0)
    kappa = (n * r / (n - r).clamp_min(1e-12)).clamp(1e-9, 2.0)  # (0, 2]: 2 is J of rank one
    shape = n / kappa  # (N,)
    c = torch.exp(torch.lgamma(shape + 0.5) - torch.lgamma(shape)) / shape.sqrt()
    terms = mean.sqrt()  # (B, N): each image's estimate of ||J||_F
    rng = np.random.default_rng(seed)
    draws = torch.from_numpy(rng.gamma(shape.numpy(), size=(REPLICATES, *mean.shape)))
    reps = (terms * draws.div(shape).sqrt() / c).mean(1)  # (R, N), centred on the map
    return terms.mean(0), reps


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
    mean over ``images`` of ``||d pooled / d patch embedding||_F`` (float64); the maps of
    ``influence_estimates`` without their error."""
    est = influence_estimates(model, images, depths, probes, seed, chunk)
    return {k: e.map for k, e in est.items()}


def influence_estimates(
    model: VisionLSTM,
    images: torch.Tensor,
    depths: list[int] | None = None,
    probes: int | None = 2,
    seed: int = 0,
    chunk: int | None = None,
) -> dict[int, InfluenceEstimate]:
    """{k: map and probe error} of patch influence on the pooled readout after k blocks.

    ``probes``: Gaussian projections per image, None: exact (the basis). ``chunk``: images
    per graph (None: all): only one chunk's graph is held at a time, and the probes are
    drawn for all images first, so the maps do not depend on it. The model is put in eval
    mode while inside (its modes restored after)."""
    depth = len(model.blocks)
    depths = depths_for(depth) if depths is None else list(depths)
    if not depths or any(not 1 <= k <= depth for k in depths):
        raise ValueError(f"depths {depths}: each must be in 1..{depth}")
    gen = torch.Generator().manual_seed(seed)
    patches = model.layout.patch_positions
    parts: dict[int, list[torch.Tensor]] = {}
    us: dict[int, torch.Tensor] = {}
    with evaluating(model), _frozen(model):
        for part in _chunks(images.size(0), chunk):
            x0 = _start(model, images[part]).requires_grad_(True)
            ys = _readouts(model, x0, depths)
            for k in depths:  # drawn in depth order for all images: as without chunks
                if k not in us:
                    us[k] = _probe_vectors(ys[k].size(-1), probes, images.size(0), gen)
                sq = _per_probe_sq_norms(ys[k], x0, us[k][:, part], probes is None)
                parts.setdefault(k, []).append(sq[..., patches].cpu())  # row-major
            del x0, ys  # this chunk's graph goes before the next one is built
    shape = (model.layout.h, model.layout.w)
    out = {}
    for k in depths:
        m, reps = _estimate(torch.cat(parts[k], dim=1), probes is None, seed + k)
        out[k] = InfluenceEstimate(
            m.view(shape), None if reps is None else reps.view(-1, *shape), probes is None
        )
    return out


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
