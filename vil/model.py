"""Vision-LSTM: patch embedding -> ViL blocks (from a traversal) -> norm -> pooling -> norm
-> head, the layout NX-AI trained (training code, v1 hub with ``legacy_norm=True``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from dataclasses import fields as fields_of

import torch
from torch import nn

from vil.block import ViLBlock
from vil.poolings import POOLINGS
from vil.pretrained import load_pretrained
from vil.releases import INITS, RELEASES
from vil.sizes import SIZES
from vil.traversals import TRAVERSALS, canonical_layout


@dataclass(frozen=True)
class ViLConfig:
    """Everything that defines a ViL model: the one model config (the run config's ``model``).

    Defaults are ViL-T of the paper's ablations. ``None`` fields are filled by ``resolve``:
    dim/depth from ``size``, conv from the release, pooling the release's; in a run, img_size
    and num_classes come from the data (``model.img_size`` is not a run setting).
    """

    size: str = "tiny"  # vil.SIZES name: ViL-T = dim 192, depth 24 (unless dim/depth are set)
    dim: int | None = None  # token width; None = from size
    depth: int | None = None  # number of blocks; None = from size
    traversal: str = "alternating"  # registered traversal strategy (vil.TRAVERSALS): Table 2
    pooling: str | None = "bilateral_avg"  # registered pooling (vil.POOLINGS): Table 3;
    # None = the release's (v1 bilateral_avg, v2 bilateral_concat)
    release: str = "v1"  # registered model release (vil.RELEASES): v1 = the paper's, v2 = ViL2
    init: str = "paper"  # proj_down init (vil.INITS): paper (as trained) or fixed (depth-scaled)
    patch_size: int = 16  # square, non-overlapping patches
    conv: str | None = None  # "causal1d" or "grid2d"; None = the release's (v1 causal1d, v2 grid2d)
    conv_kernel: int | None = None  # causal conv width; None = the release's (4)
    drop_path: float = 0.0  # stochastic depth rate, linearly increasing over blocks (paper: 0)
    cell: str = "auto"  # mLSTM form: auto | parallel | chunkwise | recurrent | kernels[:name]
    chunk_size: int = 64  # chunk length of the chunkwise form
    num_heads: int = 4  # mLSTM heads per direction
    expansion: int = 2  # inner width = expansion * dim
    qkv_block: int = 4  # headwise q/k/v block size
    in_chans: int = 3  # input image channels
    img_size: int | tuple[int, int] | None = None  # pixels, (h, w); None = 128 (a run: data's)
    num_classes: int | None = None  # 0 = no head (features); None = 100 (a run: the data's)
    pretrained: str | None = None  # start from these weights (vil.PRETRAINED name, URL, file)
    init_seed: int | None = None  # seed of the weight-init draws alone (an A/A control: other
    # initial weights, the same data draws); None = the global RNG (a run: seeded by train.seed)

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of the patch grid."""
        h, w = resolve(self).img_size
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"img_size {(h, w)} not divisible by patch {self.patch_size}")
        return h // self.patch_size, w // self.patch_size

    @property
    def pooling_name(self) -> str:
        """The pooling the model uses (the release's when ``pooling`` is None)."""
        return self.pooling or RELEASES.get(self.release).pooling


DEFAULT_IMG_SIZE = 128  # the ablations' resolution
DEFAULT_NUM_CLASSES = 100  # ImageNet-100


def resolve(cfg: ViLConfig) -> ViLConfig:
    """``cfg`` with every None filled in: dim/depth from the size, conv and pooling from the
    release, img_size as (h, w). Validates size, release, init, traversal and pooling names."""
    if cfg.size not in SIZES:
        raise ValueError(f"unknown size {cfg.size!r}; valid: {', '.join(SIZES)}")
    release = RELEASES.get(cfg.release)
    INITS.get(cfg.init)
    dim, depth = SIZES[cfg.size]
    img = cfg.img_size if cfg.img_size is not None else DEFAULT_IMG_SIZE
    pooling = cfg.pooling if cfg.pooling is not None else release.pooling
    TRAVERSALS.get(cfg.traversal), POOLINGS.get(pooling)  # fail early, listing valid names
    return replace(
        cfg,
        dim=cfg.dim if cfg.dim is not None else dim,
        depth=cfg.depth if cfg.depth is not None else depth,
        pooling=pooling,
        conv=cfg.conv if cfg.conv is not None else release.conv,
        conv_kernel=cfg.conv_kernel if cfg.conv_kernel is not None else release.conv_kernel,
        img_size=(img, img) if isinstance(img, int) else tuple(img),
        num_classes=cfg.num_classes if cfg.num_classes is not None else DEFAULT_NUM_CLASSES,
    )


class VisionLSTM(nn.Module):
    """ViL in NX-AI's trained layout: blocks -> LayerNorm -> pooling -> LayerNorm -> head."""

    def __init__(self, cfg: ViLConfig) -> None:
        super().__init__()
        self.cfg = cfg = resolve(cfg)
        self.release = RELEASES.get(cfg.release)
        self.traversal = TRAVERSALS.get(cfg.traversal)
        self.pooling = POOLINGS.get(cfg.pooling)
        h, w = cfg.grid
        self.layout = canonical_layout(h, w, self.pooling.extra_at(h, w))
        self.patch_embed = nn.Conv2d(cfg.in_chans, cfg.dim, cfg.patch_size, cfg.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, h * w, cfg.dim))
        n_extra = len(self.layout.extra_positions)
        self.cls_token = nn.Parameter(torch.zeros(1, n_extra, cfg.dim)) if n_extra else None
        self.blocks = nn.ModuleList(self._block(i) for i in range(cfg.depth))
        d = self.release
        self.norm = nn.LayerNorm(cfg.dim, eps=d.post_norm_eps, bias=d.bias)
        out_dim = self.pooling.out_dim(cfg.dim)
        # the trained models normalise the pooled vector again (weight and bias, both releases)
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
            bias=self.release.bias,
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

    def forward_features(self, images: torch.Tensor, plain: bool = False) -> torch.Tensor:
        """Images -> normalised token sequence (B, N, dim) in canonical order. ``plain``:
        the products as the architecture writes them (FLOP counting), same outputs."""
        x = self.tokens(images)
        for block in self.blocks:
            x = block(x, plain)
        return self.norm(x)

    def forward(self, images: torch.Tensor, plain: bool = False) -> torch.Tensor:
        pooled = self.pooling(self.forward_features(images, plain), self.layout)
        return self.head(self.head_norm(pooled))


@contextlib.contextmanager
def init_rng(seed: int | None) -> Iterator[None]:
    """The weight-init draws from ``seed`` on a forked CPU generator (the caller's RNG state
    is put back, so every later draw is what it would have been); None: the global RNG."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def create_model(
    size: str | ViLConfig = "tiny",
    traversal: str | None = None,
    pooling: str | None = None,
    img_size: int | tuple[int, int] | None = None,
    patch_size: int | None = None,
    num_classes: int | None = None,
    pretrained_source: str = "train",
    **fields,
) -> VisionLSTM:
    """Build a ViL from a ``ViLConfig`` or a size name, plus ViLConfig fields.

    ``create_model("tiny", "bi", img_size=128)`` or ``create_model(cfg, num_classes=10)``:
    arguments given replace the config's. A size name starts from ViLConfig's defaults
    with ``pooling`` None, the release's (v1 bilateral_avg, v2 bilateral_concat).
    ``pretrained``: a published checkpoint's name (``vil.PRETRAINED``), a URL or a file,
    whose state dict is in the ``pretrained_source`` layout (``vil.REFERENCE_SOURCES``).
    """
    base = size if isinstance(size, ViLConfig) else ViLConfig(size=size, pooling=None)
    given = {"traversal": traversal, "pooling": pooling, "img_size": img_size,
             "patch_size": patch_size, "num_classes": num_classes}  # fmt: skip
    fields.update({k: v for k, v in given.items() if v is not None})
    valid = {f.name for f in fields_of(ViLConfig)}
    unknown = set(fields) - valid
    if unknown:
        raise ValueError(f"unknown model option(s) {sorted(unknown)}; valid: {sorted(valid)}")
    cfg = resolve(replace(base, **fields))
    with init_rng(cfg.init_seed):
        model = VisionLSTM(cfg)
    if cfg.pretrained is not None:
        load_pretrained(model, cfg.pretrained, source=pretrained_source)
    return model
