"""The ``show`` command: one grid point's merged config, each value with the layer it came
from (default < protocol < experiment < --set < variant < matched < tuned < seed < device:
``Experiment.config_for``'s one layering)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ablations.schema.config import flatten, to_dict
from ablations.schema.errors import ConfigError
from ablations.schema.layers import sources
from ablations.sweep import Sweep


def rows(s: Sweep, variant: str, seed: int) -> list[dict[str, Any]]:
    """``[{key, value, source}]`` of ``variant`` at ``seed``, in the config's field order."""
    layers = s.variant_layers(variant, seed, _tuned(s, variant))
    config = s.variant_config(variant, seed, _tuned(s, variant))
    origin = sources(s.catalog.protocol_keys.get(s.protocol, {}), layers)
    return [{"key": k, "value": v, "source": origin[k]}
            for k, v in flatten(to_dict(config)).items()]  # fmt: skip


def _tuned(s: Sweep, variant: str) -> dict | None:
    best = s.tuned.get(variant)
    return best.overrides if best else None


def run(s: Sweep, args: argparse.Namespace) -> int:
    variant = args.variant or s.exp.reference
    if variant not in s.exp.variant_names:
        valid = ", ".join(s.exp.variant_names)
        raise ConfigError(f"{s.catalog.source}: {s.exp.name}: unknown variant {variant!r}; "
                          f"valid: {valid}")  # fmt: skip
    seed = s.grid[0].seed if s.grid else s.exp.seeds[0]
    table = rows(s, variant, seed)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    print(f"{s.exp.name}/{variant}-s{seed} under protocol {s.protocol} ({s.catalog.source})")
    width = max(len(r["key"]) for r in table)
    for r in table:
        value = json.dumps(r["value"]) if not isinstance(r["value"], str) else r["value"]
        print(f"  {r['key']:<{width}}  {value:<24} {r['source']}")
    return 0
