"""NX-AI's state dicts (training code, v1 hub, v2 hub) onto our layout, by named source.

Our layout stacks each block's direction-specific parameters along a leading set axis, fuses
q and k, stores the two gates as one (3*inner, 2*heads) matrix and keeps LayerNorm weights
plain. The reference keeps one module per direction (suffix ``""``, ``_rev``, ``_du``,
``_ud``), and its xLSTM LayerNorms store ``weight`` as an offset applied as ``1 + weight``
(block norms, post-blocks norm, per-head norm; not the pre-head ``nn.LayerNorm``), in all
three sources. Hub state dicts are first renamed into the training code's names (the
inverse of the hub's own ``hubconf.py`` preprocessing), then one mapping does the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from vil.resample import notice, resample_pos_embed
from vil.traversals import Direction

REFERENCE_SOURCES = ("train", "hub_v1", "hub_v2")
# our direction -> the training code's module suffix when a block has a set per direction
SUFFIX = {"row": "", "row_rev": "_rev", "col": "_du", "col_rev": "_ud"}


class ConversionError(ValueError):
    """A reference state dict that does not fit the model (the message names the key)."""


def _rename(sd: dict, rules: list[tuple[str, str]]) -> dict:
    out = {}
    for key, value in sd.items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _hub_v1_to_train(sd: dict) -> dict:
    """VisionLSTM (legacy_norm=True) names -> training-code names."""
    return _rename(sd, [
        (r"^blocks\.(\d+)\.layer\.", r"xlstm.blocks.\1.xlstm."),
        (r"^blocks\.(\d+)\.norm\.", r"xlstm.blocks.\1.xlstm_norm."),
        (r"^legacy_norm\.", "xlstm.post_blocks_norm."),
        (r"^norm\.", "head.0."),
        (r"^head\.(weight|bias)$", r"head.1.\1"),
    ])  # fmt: skip


def _hub_v2_to_train(sd: dict) -> dict:
    """VisionLSTM2 names (block pairs) -> training-code names (one block per direction)."""

    def flat(m: re.Match) -> str:
        i, half = int(m.group(1)), m.group(2)
        return f"xlstm.blocks.{2 * i + (half == 'rowwise_from_bot_right')}."

    sd = {re.sub(r"^blocks\.(\d+)\.(rowwise_from_\w+?)\.", flat, k): v for k, v in sd.items()}
    return _rename(sd, [
        (r"^(xlstm\.blocks\.\d+\.)layer\.conv\.", r"\1xlstm.conv1d."),
        (r"^(xlstm\.blocks\.\d+\.)layer\.", r"\1xlstm."),
        (r"^(xlstm\.blocks\.\d+\.)norm\.", r"\1xlstm_norm."),
        (r"^norm\.", "xlstm.post_blocks_norm."),
        (r"^legacy_norm\.", "head.0."),
        (r"^head\.(weight|bias)$", r"head.1.\1"),
    ])  # fmt: skip


TO_TRAIN: dict[str, Callable[[dict], dict]] = {
    "train": lambda sd: dict(sd),
    "hub_v1": _hub_v1_to_train,
    "hub_v2": _hub_v2_to_train,
}


class _Source:
    """The reference tensors, handed out once each; the first bad key raises."""

    def __init__(self, sd: dict, gradients: bool) -> None:
        self.sd = {k: v for k, v in sd.items() if "causal_mask" not in k}  # old buffers
        self.gradients = gradients
        self.offset = 0.0 if gradients else 1.0  # d(1 + w)/dw = 1: gradients take no offset

    def take(self, key: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        if key not in self.sd:
            raise ConversionError(f"reference state dict has no key {key!r}")
        t = self.sd.pop(key)
        if shape is not None and tuple(t.shape) != shape:
            raise ConversionError(f"{key!r} has shape {tuple(t.shape)}, the model needs {shape}")
        return t.detach().float()

    def norm_weight(self, key: str, shape: tuple[int, ...]) -> torch.Tensor:
        """An xLSTM LayerNorm weight: stored as an offset from 1."""
        return self.take(key, shape) + self.offset

    def has(self, key: str) -> bool:
        return key in self.sd

    def finish(self) -> None:
        if self.sd:
            key = next(iter(self.sd))
            raise ConversionError(f"reference key {key!r} has no place in the model")


def _set_suffixes(layer, block: int) -> list[tuple[str, bool]]:
    """Per parameter set: the reference module suffix and whether its direction is reversed."""
    dirs: tuple[Direction, ...] = layer.directions
    if layer.skip.size(0) == 1:  # one set: the reference's unsuffixed modules
        rev = {d.reverse for d in dirs}
        return [("", rev.pop() if len(rev) == 1 else None)]
    unknown = [d.name for d in dirs if d.name not in SUFFIX]
    if unknown:
        raise ConversionError(f"block {block}: direction {unknown[0]!r} has no reference module")
    return [(SUFFIX[d.name], d.reverse) for d in dirs]


def _conv(src: _Source, pre: str, layer, reverse: bool | None, block: int) -> torch.Tensor:
    """The reference conv's weight in our (inner, taps) or (inner, 3, 3) layout."""
    inner = layer.inner
    if layer.conv_kind == "causal1d":
        return src.take(f"{pre}.conv.weight", (inner, 1, layer.conv_weight.size(-1)))[:, 0]
    w = src.take(f"{pre}.weight", (inner, 1, 3, 3))[:, 0]
    if any(d.order != "row" for d in layer.directions):  # the reference's grid is (h, w)
        raise ConversionError(f"block {block}: the reference has no grid conv off row order")
    if reverse is None:  # shared kernel over a forward and a reversed scan: not our layout
        raise ConversionError(f"block {block}: one grid conv shared by opposite directions")
    # The reference convolves the reversed sequence as an (h, w) grid: the image turned by
    # 180 degrees. Ours convolves the canonical grid, so the kernel turns instead.
    return w.flip(-1, -2) if reverse else w


def _layer(src: _Source, layer, block: int) -> dict[str, torch.Tensor]:
    """One block's mLSTM layer: reference modules per direction -> our stacked sets."""
    base = f"xlstm.blocks.{block}.xlstm"
    inner, dim = layer.inner, layer.dim
    nb, out2, bs = layer.qk_weight.shape[1:]
    G = layer.gate_bias.size(-1)
    out = {"proj_up.weight": src.take(f"{base}.proj_up.weight", (2 * inner, dim))}
    out["proj_down.weight"] = src.take(f"{base}.proj_down.weight", (dim, inner))
    sets: dict[str, list[torch.Tensor]] = {}
    for s, reverse in _set_suffixes(layer, block):
        cell = f"{base}.mlstm_cell{s}"
        q = src.take(f"{base}.q_proj{s}.weight", (nb, bs, bs))
        k = src.take(f"{base}.k_proj{s}.weight", (nb, bs, bs))
        conv = f"{base}.conv1d{s}"
        gw = [src.take(f"{cell}.{g}.weight", (G // 2, 3 * inner)) for g in ("igate", "fgate")]
        gb = [src.take(f"{cell}.{g}.bias", (G // 2,)) for g in ("igate", "fgate")]
        row = {
            "qk_weight": torch.cat([q, k], dim=1),
            "v_weight": src.take(f"{base}.v_proj{s}.weight", (nb, bs, bs)),
            "conv_weight": _conv(src, conv, layer, reverse, block),
            "conv_bias": src.take(f"{conv}{'.conv' * (layer.conv_kind == 'causal1d')}.bias"),
            "gate_weight": torch.cat(gw, dim=0).t(),
            "gate_bias": torch.cat(gb),
            "norm_weight": src.norm_weight(f"{cell}.outnorm.weight", (inner,)),
            "skip": src.take(f"{base}.learnable_skip{s}", (inner,)),
        }
        if layer.qk_bias is not None:
            qkb = [src.take(f"{base}.{p}_proj{s}.bias", (inner,)) for p in ("q", "k")]
            row["qk_bias"] = torch.cat(qkb)
            row["v_bias"] = src.take(f"{base}.v_proj{s}.bias", (inner,))
            row["norm_bias"] = src.take(f"{cell}.outnorm.bias", (inner,))
        for name, t in row.items():
            sets.setdefault(name, []).append(t)
    out.update({name: torch.stack(ts) for name, ts in sets.items()})
    if layer.proj_up.bias is not None:
        out["proj_up.bias"] = src.take(f"{base}.proj_up.bias", (2 * inner,))
        out["proj_down.bias"] = src.take(f"{base}.proj_down.bias", (dim,))
    return out


def _pos_embed(src: _Source, grid: tuple[int, int], dim: int) -> torch.Tensor:
    """The reference's (1, H, W, dim) embedding, resampled when its grid is not ours (weights
    only: a gradient on another grid has no place in the model)."""
    key, want = "pos_embed.embed", (1, *grid, dim)
    t = src.sd.get(key)
    fits = t is not None and t.dim() == 4 and t.size(0) == 1 and t.size(3) == dim
    if src.gradients or not fits or tuple(t.shape[1:3]) == grid:
        return src.take(key, want)  # as it is, or an error naming both shapes
    old = tuple(t.shape[1:3])
    pos = resample_pos_embed(src.take(key), grid)
    notice(f"reference {key}", old, grid)
    return pos


def _outer(src: _Source, model) -> dict[str, torch.Tensor]:
    """Patch and position embedding, the post-blocks norm, pre-head norm and head."""
    c = model.cfg
    h, w = c.grid
    pos = _pos_embed(src, (h, w), c.dim).reshape(1, h * w, c.dim)
    patch_shape = tuple(model.patch_embed.weight.shape)
    out = {
        "patch_embed.weight": src.take("patch_embed.proj.weight", patch_shape),
        "patch_embed.bias": src.take("patch_embed.proj.bias", (c.dim,)),
        "pos_embed": pos,
        "norm.weight": src.norm_weight("xlstm.post_blocks_norm.weight", (c.dim,)),
    }  # fmt: skip
    if model.norm.bias is not None:
        out["norm.bias"] = src.take("xlstm.post_blocks_norm.bias", (c.dim,))
    if c.num_classes:
        width = model.head.in_features
        out["head_norm.weight"] = src.take("head.0.weight", (width,))  # a plain nn.LayerNorm
        out["head_norm.bias"] = src.take("head.0.bias", (width,))
        out["head.weight"] = src.take("head.1.weight", (c.num_classes, width))
        out["head.bias"] = src.take("head.1.bias", (c.num_classes,))
    return out


def convert_reference_state_dict(
    state_dict: dict[str, torch.Tensor], model, source: str = "train", gradients: bool = False
) -> dict[str, torch.Tensor]:
    """A reference state dict (``source``: train | hub_v1 | hub_v2) in ``model``'s layout.

    ``gradients``: the dict holds gradients of the reference's parameters, mapped the same
    way except for the norm offsets. Raises :class:`ConversionError` naming the first key
    that is missing, has the wrong shape, or is left over.
    """
    if source not in TO_TRAIN:
        raise ValueError(f"unknown reference source {source!r}; valid: {', '.join(TO_TRAIN)}")
    if model.cls_token is not None:
        raise ConversionError("the reference models have no CLS token; use a patch pooling")
    src = _Source(TO_TRAIN[source](state_dict), gradients)
    out = _outer(src, model)
    for i, block in enumerate(model.blocks):
        out[f"blocks.{i}.norm.weight"] = src.norm_weight(
            f"xlstm.blocks.{i}.xlstm_norm.weight", (model.cfg.dim,)
        )
        if block.norm.bias is not None:
            out[f"blocks.{i}.norm.bias"] = src.take(f"xlstm.blocks.{i}.xlstm_norm.bias")
        out.update({f"blocks.{i}.layer.{k}": v for k, v in _layer(src, block.layer, i).items()})
    src.finish()
    return out


def load_reference_layer(layer, state_dict: dict[str, torch.Tensor]) -> None:
    """Load one reference mLSTM layer (the training code's or the ``xlstm`` package's, names
    relative to the layer) into our :class:`vil.block.MLSTMLayer`."""
    src = _Source({f"xlstm.blocks.0.xlstm.{k}": v for k, v in state_dict.items()}, False)
    converted = _layer(src, layer, 0)
    src.finish()
    layer.load_state_dict(converted)


def load_reference_state_dict(model, state_dict: dict, source: str = "train") -> None:
    """Load an NX-AI state dict (``source``: train | hub_v1 | hub_v2) into ``model``."""
    converted = convert_reference_state_dict(state_dict, model, source)
    ours = model.state_dict()
    missing = [k for k in ours if k not in converted]
    if missing:  # a part of ours the reference does not have
        raise ConversionError(f"no reference weights for our {missing[0]!r}")
    model.load_state_dict({k: v.to(ours[k].dtype) for k, v in converted.items()})
