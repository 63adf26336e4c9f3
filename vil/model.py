"""Vision-LSTM: patch embedding -> ViL blocks (from a traversal) -> norm -> pooling -> norm
-> head, the layout NX-AI trained (training code, v1 hub with ``legacy_norm=True``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from vil.block import ViLBlock
from vil.designs import DESIGNS, INITS
from vil.poolings import POOLINGS
from vil.pretrained import load_pretrained
from vil.traversals import TRAVERSALS, canonical_layout

# name -> (dim, depth). Paper sizes plus CPU-sized ones for the demo and tests.
SIZES: dict[str, tuple[int, int]] = {
    "nano": (32, 2),  # tests: seconds on a laptop CPU
    "micro": (64, 6),  # the demo protocol on CPU
    "tiny": (192, 24),
    "tiny_plus": (192, 29),
    "small": (384, 24),
    "small_plus": (384, 26),
    "base": (768, 24),
}


@dataclass(frozen=True)
class ViLConfig:
    """Everything that defines a ViL model; defaults are ViL-T of the paper's ablations."""

    dim: int = 192  # token width
    depth: int = 24  # number of blocks
    traversal: str = "alternating"  # registered traversal strategy (vil.TRAVERSALS)
    pooling: str = "bilateral_avg"  # registered pooling (vil.POOLINGS)
    img_size: tuple[int, int] = (128, 128)  # (height, width) in pixels
    patch_size: int = 16  # square, non-overlapping patches
    in_chans: int = 3
    num_classes: int = 100  # 0 = no head (features)
    num_heads: int = 4  # mLSTM heads per direction
    expansion: int = 2  # inner width = expansion * dim
    qkv_block: int = 4  # headwise q/k/v block size
    design: str = "v1"  # registered design (vil.DESIGNS): v1 of the ablations, or v2
    init: str = "paper"  # proj_down init (vil.INITS): paper (as trained) or fixed (depth-scaled)
    conv: str | None = None  # "causal1d" or "grid2d"; None = the design's (v1 causal1d, v2 grid2d)
    conv_kernel: int | None = None  # causal conv width; None = the design's (4)
    drop_path: float = 0.0  # stochastic depth rate, linearly increasing over blocks
    cell: str = "auto"  # mLSTM form: auto | parallel | chunkwise | recurrent
    chunk_size: int = 64  # chunk length of the chunkwise form
    extra: dict = field(default_factory=dict, compare=False)  # free-form notes (not used)

    @property
    def grid(self) -> tuple[int, int]:
        h, w = self.img_size
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"img_size {self.img_size} not divisible by patch {self.patch_size}")
        return h // self.patch_size, w // self.patch_size


def resolve(cfg: ViLConfig) -> ViLConfig:
    """``cfg`` with the design's conv filled in where it is None (validates design and init)."""
    design = DESIGNS.get(cfg.design)
    INITS.get(cfg.init)
    conv = cfg.conv if cfg.conv is not None else design.conv
    kernel = cfg.conv_kernel if cfg.conv_kernel is not None else design.conv_kernel
    return replace(cfg, conv=conv, conv_kernel=kernel)


class VisionLSTM(nn.Module):
    """ViL in NX-AI's trained layout: blocks -> LayerNorm -> pooling -> LayerNorm -> head."""

    def __init__(self, cfg: ViLConfig) -> None:
        super().__init__()
        self.cfg = cfg = resolve(cfg)
        self.design = DESIGNS.get(cfg.design)
        self.traversal = TRAVERSALS.get(cfg.traversal)
        self.pooling = POOLINGS.get(cfg.pooling)
        h, w = cfg.grid
        self.layout = canonical_layout(h, w, self.pooling.extra_at(h, w))
        self.patch_embed = nn.Conv2d(cfg.in_chans, cfg.dim, cfg.patch_size, cfg.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, h * w, cfg.dim))
        n_extra = len(self.layout.extra_positions)
        self.cls_token = nn.Parameter(torch.zeros(1, n_extra, cfg.dim)) if n_extra else None
        self.blocks = nn.ModuleList(self._block(i) for i in range(cfg.depth))
        d = self.design
        self.norm = nn.LayerNorm(cfg.dim, eps=d.post_norm_eps, bias=d.bias)
        out_dim = self.pooling.out_dim(cfg.dim)
        # the trained models normalise the pooled vector again (weight and bias, both designs)
        has_head = bool(cfg.num_classes)
        self.head_norm = nn.LayerNorm(out_dim, eps=d.head_norm_eps) if has_head else nn.Identity()
        self.head = nn.Linear(out_dim, cfg.num_classes) if has_head else nn.Identity()
        self._init_weights()

    def _block(self, i: int) -> ViLBlock:
        c = self.cfg
        dpr = c.drop_path * i / max(c.depth - 1, 1)
        return ViLBlock(
            c.dim,
            drop_path=dpr,
            directions=self.traversal.block_directions(i),
            param_sets=self.traversal.block_param_sets(i),
            layout=self.layout,
            num_blocks=INITS.get(c.init)(c.depth),
            bias=self.design.bias,
            num_heads=c.num_heads,
            expansion=c.expansion,
            qkv_block=c.qkv_block,
            conv=c.conv,
            conv_kernel=c.conv_kernel,
            cell=c.cell,
            chunk_size=c.chunk_size,
        )

    def _init_weights(self) -> None:
        nn.init.xavier_uniform_(self.patch_embed.weight.view(self.cfg.dim, -1))
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        if isinstance(self.head, nn.Linear):
            nn.init.trunc_normal_(self.head.weight, std=2e-5)
            nn.init.zeros_(self.head.bias)

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> canonical token sequence (B, N, dim) before the blocks."""
        x = self.patch_embed(images).flatten(2).transpose(1, 2) + self.pos_embed
        if self.cls_token is None:
            return x
        return self.layout.insert_extra(x, self.cls_token.expand(x.size(0), -1, -1).to(x.dtype))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> normalised token sequence (B, N, dim) in canonical order."""
        x = self.tokens(images)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.pooling(self.forward_features(images), self.layout)
        return self.head(self.head_norm(pooled))


def create_model(
    size: str = "tiny",
    traversal: str = "alternating",
    pooling: str | None = None,
    img_size: int | tuple[int, int] = 128,
    patch_size: int = 16,
    num_classes: int = 100,
    design: str = "v1",
    init: str = "paper",
    pretrained: str | None = None,
    pretrained_source: str = "train",
    **overrides,
) -> VisionLSTM:
    """Build a ViL by size name and registered part names; ``overrides`` set ViLConfig fields.

    ``pooling`` None is the design's (v1 bilateral_avg, v2 bilateral_concat). ``pretrained``:
    a published checkpoint's name (``vil.PRETRAINED``), a URL or a file, whose state dict is
    in the ``pretrained_source`` layout (``vil.REFERENCE_SOURCES``; published files: train).
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; valid: {', '.join(SIZES)}")
    pooling = pooling if pooling is not None else DESIGNS.get(design).pooling
    TRAVERSALS.get(traversal), POOLINGS.get(pooling)  # fail early, listing valid names
    dim, depth = SIZES[size]
    hw = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    cfg = ViLConfig(
        dim=dim,
        depth=depth,
        traversal=traversal,
        pooling=pooling,
        img_size=hw,
        patch_size=patch_size,
        num_classes=num_classes,
        design=design,
        init=init,
    )
    unknown = set(overrides) - set(asdict(cfg))
    if unknown:
        raise ValueError(f"unknown model option(s) {sorted(unknown)}; valid: {sorted(asdict(cfg))}")
    model = VisionLSTM(replace(cfg, **overrides))
    if pretrained is not None:
        load_pretrained(model, pretrained, source=pretrained_source)
    return model
