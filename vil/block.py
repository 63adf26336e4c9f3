"""The mLSTM layer and the residual ViL block, running one or several directions at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vil import layers
from vil.mlstm import mlstm
from vil.traversals import Direction, TokenLayout

CONV_KINDS = ("causal1d", "grid2d")


class MLSTMLayer(nn.Module):
    """ViL's mLSTM layer over K directions with P parameter sets (P = 1 or K).

    Shared across directions: ``proj_up`` (mLSTM branch x and gate branch z) and
    ``proj_down``. Per parameter set: conv, q/k/v (headwise), gates, head norm and skip.
    The gated outputs of the directions, mapped back to canonical order, are summed.
    """

    def __init__(
        self,
        dim: int,
        directions: tuple[Direction, ...],
        param_sets: int,
        layout: TokenLayout,
        num_blocks: int,
        num_heads: int = 4,
        expansion: int = 2,
        qkv_block: int = 4,
        conv: str = "causal1d",
        conv_kernel: int = 4,
        cell: str = "auto",
        chunk_size: int = 64,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if conv not in CONV_KINDS:
            raise ValueError(f"unknown conv {conv!r}; valid: {', '.join(CONV_KINDS)}")
        if param_sets not in (1, len(directions)):
            raise ValueError(f"param_sets must be 1 or {len(directions)}, got {param_sets}")
        inner = expansion * dim
        self.dim, self.inner, self.num_heads = dim, inner, num_heads
        self.conv_kind, self.cell, self.chunk_size = conv, cell, chunk_size
        self.layout, self.directions = layout, directions
        self._register_orders(directions, layout)
        P, nb = param_sets, inner // qkv_block
        self.group = layers.headwise_group(nb // num_heads, qkv_block)
        self.proj_up = nn.Linear(dim, 2 * inner, bias=bias)
        conv_shape = (P, inner, conv_kernel) if conv == "causal1d" else (P, inner, 3, 3)
        self.conv_weight = nn.Parameter(torch.empty(conv_shape))
        self.conv_bias = nn.Parameter(torch.zeros(P, inner))
        self.qk_weight = nn.Parameter(torch.empty(P, nb, 2 * qkv_block, qkv_block))  # q, k fused
        self.v_weight = nn.Parameter(torch.empty(P, nb, qkv_block, qkv_block))
        self.gate_weight = nn.Parameter(torch.zeros(P, 3 * inner, 2 * num_heads))  # igate|fgate
        self.gate_bias = nn.Parameter(torch.zeros(P, 2 * num_heads))
        self.norm_weight = nn.Parameter(torch.ones(P, inner))
        self.skip = nn.Parameter(torch.ones(P, inner))
        for name, width in (("qk_bias", 2 * inner), ("v_bias", inner), ("norm_bias", inner)):
            self.register_parameter(name, nn.Parameter(torch.zeros(P, width)) if bias else None)
        self.proj_down = nn.Linear(inner, dim, bias=bias)
        self.reset_parameters(num_blocks)

    def _register_orders(self, directions: tuple[Direction, ...], layout: TokenLayout) -> None:
        extra = tuple(layout.extra_positions.tolist())
        perms = torch.stack([d.sequence_order(layout.h, layout.w, extra) for d in directions])
        N = perms.size(1)
        self.identity = len(directions) == 1 and bool((perms[0] == torch.arange(N)).all())
        # gather index: traversal sequence of every direction, concatenated
        self.register_buffer("perm", perms.reshape(-1), persistent=False)
        # un-permute: canonical token n of direction k sits at k*N + argsort(perm_k)[n]
        offsets = torch.arange(len(directions)).unsqueeze(1) * N
        self.register_buffer(
            "inverse", (perms.argsort(dim=1) + offsets).reshape(-1), persistent=False
        )
        self.register_buffer("patch_pos", layout.patch_positions.clone(), persistent=False)

    def reset_parameters(self, num_blocks: int) -> None:
        """ViL's init; ``num_blocks`` scales proj_down's std (1 in every trained model)."""
        layers.small_init_(self.proj_up.weight, self.dim)
        layers.small_init_(self.qk_weight, self.dim)
        layers.small_init_(self.v_weight, self.dim)
        layers.wang_init_(self.proj_down.weight, self.dim, num_blocks)
        bound = self.conv_weight[0, 0].numel() ** -0.5  # PyTorch's default for a depthwise conv
        nn.init.uniform_(self.conv_weight, -bound, bound)
        nn.init.uniform_(self.conv_bias, -bound, bound)
        nn.init.zeros_(self.gate_weight)  # load-bearing: zero gate weights at init
        nh = self.num_heads
        with torch.no_grad():
            nn.init.normal_(self.gate_bias[:, :nh], std=0.1)  # input gate
            self.gate_bias[:, nh:] = torch.linspace(3.0, 6.0, nh)  # forget gate
        nn.init.ones_(self.norm_weight)
        nn.init.ones_(self.skip)
        biases = (self.proj_up.bias, self.proj_down.bias, self.qk_bias, self.v_bias, self.norm_bias)
        for b in biases:  # v2 release: all zero at init
            if b is not None:
                nn.init.zeros_(b)

    def _to_directions(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) canonical -> (B, K, N, C) in each direction's traversal order."""
        B, N, C = x.shape
        if self.identity:
            return x.unsqueeze(1)
        return x.index_select(1, self.perm).view(B, -1, N, C)

    def _from_directions(self, y: torch.Tensor) -> torch.Tensor:
        """(B, K, N, C) in traversal orders -> (B, N, C) canonical, summed over directions."""
        B, K, N, C = y.shape
        if self.identity:
            return y.squeeze(1)
        return y.reshape(B, K * N, C).index_select(1, self.inverse).view(B, K, N, C).sum(1)

    def forward(
        self, x: torch.Tensor, plain: bool = False, capture: list[dict] | None = None
    ) -> torch.Tensor:
        """x (B, N, dim) canonical -> same. ``plain``: the architecture's products as the
        reference writes them (FLOP counting), not the fast path's folded gates and grouped
        blocks (same outputs). ``capture``: a list that receives one dict of the cell's inputs
        and output (q, k, v, igate, fgate, h; traversal order), for analysis
        (vil/implicit_attention.py); None (the default) keeps nothing."""
        B, N, _ = x.shape
        xm, z = self.proj_up(x).chunk(2, dim=-1)
        xs = self._to_directions(xm)  # (B, K, N, inner)
        if self.conv_kind == "causal1d":
            c = F.silu(layers.causal_conv(xs, self.conv_weight, self.conv_bias))
        else:
            L = self.layout
            c = layers.grid_conv(xm, self.conv_weight, self.conv_bias, self.patch_pos, L.h, L.w)
            c = F.silu(self._to_directions_sets(c))
        nh, group = self.num_heads, 1 if plain else self.group
        q, k = layers.headwise(c, self.qk_weight, nh, group, parts=2)  # (B*K, NH, N, DH)
        (v,) = layers.headwise(xs, self.v_weight, nh, group)
        if self.qk_bias is not None:
            qb, kb = self.qk_bias.chunk(2, dim=-1)
            q, k, v = (layers.head_bias(t, b, B) for t, b in ((q, qb), (k, kb), (v, self.v_bias)))
        gates = self._gates(c, xs, q, k, v, plain)
        h = self._cell(q, k, v, gates)
        if capture is not None:
            ig, fg = self._split_gates(gates)
            capture.append({"q": q, "k": k, "v": v, "igate": ig, "fgate": fg, "h": h})
        h = layers.head_norm(h, self.norm_weight, c, self.skip)
        if self.norm_bias is not None:
            h = h + self.norm_bias.unsqueeze(1)
        return self.proj_down(self._from_directions(h) * F.silu(z))

    def _gates(self, c, xs, q, k, v, plain: bool) -> torch.Tensor:
        """Input and forget gate pre-activations (B, K, N, 2*NH) from cat(q, k, v)."""
        if plain:  # the reference's gate product on cat(q, k, v) (FLOP counting, checks)
            B = c.size(0)
            qkv = torch.cat([layers.heads_to_tokens(t, B) for t in (q, k, v)], dim=-1)
            return layers.per_set_linear(qkv, self.gate_weight, self.gate_bias)
        wc, wx = layers.fold_gates(self.qk_weight, self.v_weight, self.gate_weight)
        bias = self.gate_bias
        if self.qk_bias is not None:  # q/k/v biases pass through the gates as constants
            qkv_bias = torch.cat([self.qk_bias, self.v_bias], dim=-1)
            bias = bias + torch.einsum("pi,pig->pg", qkv_bias, self.gate_weight)
        return layers.per_set_linear(c, wc, bias) + layers.per_set_linear(xs, wx)

    def _to_directions_sets(self, c: torch.Tensor) -> torch.Tensor:
        """Grid-conv output (B, P, N, C) canonical -> (B, K, N, C) traversal order."""
        B, P, N, C = c.shape
        K = len(self.directions)
        if self.identity:
            return c
        flat = c.expand(B, K, N, C) if P == 1 else c
        idx = self.perm.view(K, N) + torch.arange(K, device=c.device).unsqueeze(1) * N
        return flat.reshape(B, K * N, C).index_select(1, idx.reshape(-1)).view(B, K, N, C)

    def _split_gates(self, gates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gates (B, K, N, 2*NH) -> input and forget gate pre-activations (B*K, NH, N)."""
        B, K, N, _ = gates.shape
        return gates.reshape(B * K, N, 2 * self.num_heads).transpose(1, 2).chunk(2, dim=1)

    def _cell(self, q, k, v, gates) -> torch.Tensor:
        """Run the mLSTM cell on all directions as one batch of (B*K, NH, N, DH) heads."""
        ig, fg = self._split_gates(gates)
        return mlstm(q, k, v, ig, fg, form=self.cell, chunk_size=self.chunk_size)


class ViLBlock(nn.Module):
    """Pre-norm residual block: ``x + DropPath(mLSTMLayer(LayerNorm(x)))``."""

    def __init__(
        self, dim: int, drop_path: float = 0.0, bias: bool = False, **layer_kwargs
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, bias=bias)
        self.layer = MLSTMLayer(dim, bias=bias, **layer_kwargs)
        self.drop_path = layers.DropPath(drop_path)

    def forward(
        self, x: torch.Tensor, plain: bool = False, capture: list[dict] | None = None
    ) -> torch.Tensor:
        """``plain``, ``capture``: see :meth:`MLSTMLayer.forward`."""
        return x + self.drop_path(self.layer(self.norm(x), plain, capture))
