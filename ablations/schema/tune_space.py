"""An experiment's ``tune:`` block: the search space, the budget of a tune trial, the pruner.

```yaml
tune:
  budget_epochs: 40        # epochs of one tune trial (default: a tenth of the protocol's)
  trials: 20               # trials per variant when --budget is not given
  pruner: successive_halving   # | hyperband | none
  seed: 0                  # TPE sampler seed
  space:                   # config key -> range; factors multiply the protocol's value
    train.lr: {low_factor: 0.25, high_factor: 4, log: true}
    train.weight_decay: {low: 0.01, high: 0.2, log: true}
  start: [{}]              # points tried first, as factors ({} = the protocol itself)
```

Validated on load (``parse_tune``) with one-line errors naming the key; ranges given as
factors are resolved against the protocol in ``ranges`` (a factor of a zero value is an
error there, naming the key).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ablations.schema.config import ConfigError, RunConfig, flatten, to_dict

PRUNERS = ("successive_halving", "hyperband", "none")
TUNE_KEYS = ("budget_epochs", "trials", "pruner", "seed", "space", "start")
PARAM_KEYS = ("low_factor", "high_factor", "low", "high", "log")
BUDGET_SHARE = 0.1  # default tune trial length, as a share of the protocol's epochs


@dataclass(frozen=True)
class Param:
    """One searched config value: a range as factors of the protocol's value, or absolute."""

    key: str  # a float leaf of RunConfig, e.g. train.lr
    low_factor: float | None = 0.25  # range low = low_factor x the protocol's value
    high_factor: float | None = 4.0  # range high = high_factor x the protocol's value
    low: float | None = None  # absolute low (instead of low_factor)
    high: float | None = None  # absolute high (instead of high_factor)
    log: bool = True  # sample (and judge "on the edge") on a log scale


DEFAULT_SPACE = (Param("train.lr"), Param("train.weight_decay"))  # the default


@dataclass(frozen=True)
class TuneSpec:
    """How an experiment's variants are tuned (``vil-ablate tune``)."""

    space: tuple[Param, ...] = DEFAULT_SPACE  # what is searched
    budget_epochs: int | None = None  # epochs per tune trial; None = BUDGET_SHARE of the
    # protocol's (a tune trial is a short training: 40 of the paper's 400 epochs)
    trials: int = 20  # trials per variant when --budget is not given
    pruner: str = "successive_halving"  # on the per-epoch tuning top-1
    seed: int = 0  # TPE sampler seed (reproducible proposals)
    start: tuple[dict[str, float], ...] = field(default_factory=lambda: ({},))  # enqueued
    # first, as factors of the protocol's values: {} = the untuned protocol, so the tuned
    # choice is never worse on the tune split than the protocol's own values

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.space]


def budget_epochs(spec: TuneSpec, protocol_epochs: int) -> int:
    """Epochs of one tune trial: ``tune.budget_epochs``, else a tenth of the protocol's."""
    return spec.budget_epochs or max(1, round(BUDGET_SHARE * protocol_epochs))


def _float_keys() -> list[str]:
    flat = flatten(to_dict(RunConfig()))
    return sorted(k for k, v in flat.items() if isinstance(v, float))


def _number(value: Any, source: str, path: str, positive: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        want = "a positive number" if positive else "a number"
        raise ConfigError(f"{source}: {path}: expected {want}, got {value!r}")
    return float(value)


def _param(key: Any, spec: Any, source: str, path: str) -> Param:
    valid = _float_keys()
    if key not in valid:
        raise ConfigError(f"{source}: {path}: not a float config key; valid: {', '.join(valid)}")
    spec = spec or {}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{source}: {path}: expected a mapping of {', '.join(PARAM_KEYS)}")
    bad = [k for k in spec if k not in PARAM_KEYS]
    if bad:
        raise ConfigError(f"{source}: {path}.{bad[0]}: unknown key; valid: {', '.join(PARAM_KEYS)}")
    log = spec.get("log", True)
    if not isinstance(log, bool):
        raise ConfigError(f"{source}: {path}.log: expected true or false, got {log!r}")
    ends = {}
    for end in ("low", "high"):
        absolute, factor = spec.get(end), spec.get(f"{end}_factor")
        if absolute is not None and factor is not None:
            raise ConfigError(f"{source}: {path}: give {end} or {end}_factor, not both")
        if absolute is not None:
            ends[end] = _number(absolute, source, f"{path}.{end}", positive=log)
            ends[f"{end}_factor"] = None
        else:
            default = getattr(Param(key), f"{end}_factor")
            ends[f"{end}_factor"] = _number(
                default if factor is None else factor, source, f"{path}.{end}_factor", True
            )
    return Param(key, log=log, **ends)


def parse_tune(raw: Any, source: str, prefix: str) -> TuneSpec:
    """An experiment's ``tune:`` block (None/absent: the defaults)."""
    if raw is None:
        return TuneSpec()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: {prefix}tune: expected a mapping")
    for k in raw:
        if k not in TUNE_KEYS:
            raise ConfigError(
                f"{source}: {prefix}tune.{k}: unknown key; valid: {', '.join(TUNE_KEYS)}"
            )
    out: dict[str, Any] = {}
    for k in ("budget_epochs", "trials", "seed"):
        v = raw.get(k)
        if v is None:
            continue
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "seed" else 1):
            raise ConfigError(f"{source}: {prefix}tune.{k}: expected a positive integer, got {v!r}")
        out[k] = v
    pruner = raw.get("pruner", TuneSpec.pruner)
    if pruner not in PRUNERS:
        raise ConfigError(
            f"{source}: {prefix}tune.pruner: unknown {pruner!r}; valid: {', '.join(PRUNERS)}"
        )
    out["pruner"] = pruner
    if raw.get("space") is not None:
        space = raw["space"]
        if not isinstance(space, Mapping) or not space:
            raise ConfigError(f"{source}: {prefix}tune.space: expected a non-empty mapping")
        out["space"] = tuple(
            _param(k, v, source, f"{prefix}tune.space.{k}") for k, v in space.items()
        )
    spec = TuneSpec(**out)
    if raw.get("start") is not None:
        spec = TuneSpec(
            **{**out, "start": _start(raw["start"], spec, source, f"{prefix}tune.start")}
        )
    return spec


def _start(raw: Any, spec: TuneSpec, source: str, path: str) -> tuple[dict[str, float], ...]:
    if not isinstance(raw, list) or not all(isinstance(p, Mapping) for p in raw):
        raise ConfigError(f"{source}: {path}: expected a list of mappings (key: factor)")
    for i, point in enumerate(raw):
        for k, v in point.items():
            if k not in spec.keys:
                raise ConfigError(
                    f"{source}: {path}[{i}].{k}: not in tune.space; valid: {', '.join(spec.keys)}"
                )
            _number(v, source, f"{path}[{i}].{k}", positive=True)
    return tuple(dict(p) for p in raw)


def _get(cfg: RunConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def ranges(spec: TuneSpec, base: RunConfig, source: str) -> dict[str, tuple[float, float, bool]]:
    """key -> (low, high, log) for a variant's config (factors resolved against ``base``)."""
    out = {}
    for p in spec.space:
        value = float(_get(base, p.key))
        path = f"{source}: tune.space.{p.key}"
        if (p.low is None or p.high is None) and value <= 0:
            raise ConfigError(f"{path}: the protocol's value is {value}: give absolute low/high")
        low = p.low if p.low is not None else value * p.low_factor
        high = p.high if p.high is not None else value * p.high_factor
        if not low < high:
            raise ConfigError(f"{path}: empty range [{low:g}, {high:g}]")
        out[p.key] = (low, high, p.log)
    return out


def start_points(
    spec: TuneSpec, base: RunConfig, bounds: dict, source: str
) -> list[dict[str, float]]:
    """The ``start`` points as absolute values (every key: its factor, default 1)."""
    points = []
    for i, point in enumerate(spec.start):
        values = {k: float(_get(base, k)) * float(point.get(k, 1.0)) for k in spec.keys}
        for k, v in values.items():
            low, high, _ = bounds[k]
            if not low <= v <= high:
                raise ConfigError(f"{source}: tune.start[{i}].{k}: {v:g} is outside "
                                  f"tune.space [{low:g}, {high:g}]")  # fmt: skip
        points.append(values)
    return points


def on_edge(value: float, low: float, high: float, log: bool, share: float = 0.1) -> bool:
    """True when ``value`` lies in the outer ``share`` of [low, high] (log scale if ``log``)."""
    f = math.log if log else float
    span = f(high) - f(low)
    pos = (f(value) - f(low)) / span if span > 0 else 0.5
    return pos <= share or pos >= 1 - share
