"""The layers of a grid point's config and where each value came from.

``Experiment.config_for`` stacks the layers above a protocol (``Experiment.layers``);
``sources`` names, for every config key, the layer that set it last (``vil-ablate show``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ablations.schema.config import RunConfig, apply, flatten, to_dict

DEFAULT = "default"  # the dataclass field's own default


@dataclass(frozen=True)
class Layer:
    """One layer of a point's config: its name (``vil-ablate show``), the source its
    messages name, and its nested overrides."""

    name: str  # experiment | --set | variant | matched | tuned | seed | device | a final's
    source: str
    overrides: Mapping[str, Any]


def stack(protocol: RunConfig, layers: list[Layer]) -> RunConfig:
    """``protocol`` with each layer applied in turn (validated)."""
    cfg = protocol
    for layer in layers:
        cfg = apply(cfg, layer.overrides, layer.source)
    return cfg


def protocol_keys(name: str, protos: Mapping[str, Any]) -> dict[str, str]:
    """Each flat key a protocol's base chain sets -> the protocol that set it (the nearest)."""
    chain: list[str] = []
    while name is not None and name not in chain:  # cycles were reported on load
        chain.append(name)
        name = (protos[name] or {}).get("base")
    out: dict[str, str] = {}
    for proto in reversed(chain):  # the base first: a derived protocol overrides it
        spec = protos[proto] or {}
        sections = {k: v for k, v in spec.items() if k in ("model", "data", "train")}
        out.update(dict.fromkeys(flatten(sections), proto))
    return out


def sources(protocol: Mapping[str, str], layers: list[Layer]) -> dict[str, str]:
    """Every flat RunConfig key -> the layer that set it last: ``default``, ``protocol P``
    (``protocol``: key -> P, as ``protocol_keys`` gives it) or a layer's name."""
    out = dict.fromkeys(flatten(to_dict(RunConfig())), DEFAULT)
    out.update({k: f"protocol {p}" for k, p in protocol.items()})
    for layer in layers:
        out.update(dict.fromkeys(flatten(layer.overrides), layer.name))
    return out
