"""Load and validate experiments.yaml: named protocols and experiments (variant x seed grids).

Everything is checked on load, before any training: unknown keys, wrong types and unknown
registry names raise ``ConfigError`` with the file, the key path and the valid choices.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ablations.schema.config import (
    ConfigError,
    RunConfig,
    ViLConfig,
    apply,
    dotted,
    flatten,
    merge,
    to_dict,
)
from ablations.schema.confounds import parse_confounds
from ablations.schema.imports import import_all
from ablations.schema.layers import Layer, protocol_keys, stack
from ablations.schema.tune_space import TuneSpec, parse_tune

PACKAGE_FILE = Path(__file__).parent.parent / "experiments.yaml"
SHORT_AXES = ("traversal", "pooling")  # the paper's two axes; any other: a config key path
TOP_KEYS = ("imports", "default_protocol", "protocols", "experiments")
PROTOCOL_KEYS = ("base", "description", "seeds", "model", "data", "train")
EXPERIMENT_KEYS = (
    "description",
    "axis",
    "reference",
    "seeds",
    "model",
    "variants",
    "tune",
    "match",
    "confounds",
)
MATCH_BY = ("params", "flops")  # match: what the solved depth (or width) brings to the reference's
MATCH_KEYS = ("model.depth", "model.dim")  # what match: may solve (depth by default)


@dataclass(frozen=True)
class Variant:
    """One row of an experiment: a name and its model overrides (plus optional ``set:``)."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)  # nested RunConfig overrides,
    # including the axis value (``{"model": {"traversal": "bi"}}``)
    seeded: dict[str, int] = field(default_factory=dict)  # flat key -> offset: set to the run
    # seed + offset in the seed layer (an A/A row: ``{"model.init_seed": 1000003}``)


@dataclass(frozen=True)
class Match:
    """``match: params`` / ``match: {by: flops, key: model.dim, step: 8}``."""

    by: str  # "params" | "flops": the figure brought closest to the reference's
    key: str = "model.depth"  # the config value solved per variant
    step: int = 1  # the solved value is a multiple of this (widths: the head layout's)


@dataclass(frozen=True)
class Experiment:
    """A grid of variants along one axis, times seeds."""

    name: str
    axis: str  # "traversal" | "pooling" | any config key path, e.g. "model.init"
    reference: str  # the variant the others are compared with
    variants: tuple[Variant, ...]
    seeds: tuple[int, ...]  # the experiment's own, or (0,) when it names none
    model: dict[str, Any] = field(default_factory=dict)  # fixed model overrides
    description: str = ""
    seeds_given: bool = True  # False: the file named no seeds (the protocol's apply)
    tune: TuneSpec = field(default_factory=TuneSpec)  # `vil-ablate tune`: space and budget
    match: Match | None = None  # solve each variant's depth to match the reference's cost
    # key -> reason: training settings some variant sets on purpose (``confounds:``); the
    # report keeps those pairs' intervals, marked "confounded (declared): key"
    confounds: dict[str, str] = field(default_factory=dict)

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(f"experiment {self.name}: unknown variant {name!r}")

    @property
    def axis_key(self) -> str:
        """The config key the axis varies (``traversal`` -> ``model.traversal``)."""
        return axis_key(self.axis)

    def config_for(
        self,
        protocol: RunConfig,
        variant: str,
        seed: int,
        cli: Mapping[str, Any] | None = None,
        device: str | None = None,
        matched: Mapping[str, Any] | None = None,
        tuned: Mapping[str, Any] | None = None,
        final: tuple[str, Mapping[str, Any]] | None = None,
    ) -> RunConfig:
        """The one layering of a grid point's config, used for every trial and record:
        protocol < experiment's fixed model < --set < variant < matched < tuned < seed
        < --device < final. ``matched``: the solved depth (match:); ``tuned``: the
        variant's best tune parameters (sweep --tuned); ``final``: (source, overrides) of a
        purpose's own layer (a tune trial's split and budget, the doctor's short run)."""
        layers = self.layers(variant, seed, cli, device, matched, tuned, final)
        return stack(protocol, layers)

    def layers(
        self,
        variant: str,
        seed: int,
        cli: Mapping[str, Any] | None = None,
        device: str | None = None,
        matched: Mapping[str, Any] | None = None,
        tuned: Mapping[str, Any] | None = None,
        final: tuple[str, Mapping[str, Any]] | None = None,
    ) -> list[Layer]:
        """The layers above the protocol, in the order ``config_for`` applies them."""
        v = self.variant(variant)
        row = f"{self.name}/{v.name}"
        out = [
            Layer("experiment", f"experiment {self.name}", {"model": self.model}),
            Layer("--set", "--set", cli or {}),
            Layer("variant", row, v.overrides),
            Layer("matched", f"{row} (match)", matched or {}),
            Layer("tuned", f"{row} (tuned)", tuned or {}),
            Layer("seed", row, _seed_layer(v, seed)),
        ]
        if device:
            out.append(Layer("device", "--device", {"train": {"device": device}}))
        if final:
            out.append(Layer(final[0], final[0], final[1]))
        return out


def _seed_layer(v: Variant, seed: int) -> dict[str, Any]:
    """train.seed and the variant's seed-relative keys (``Variant.seeded``), nested."""
    return dotted({"train.seed": seed, **{k: seed + off for k, off in v.seeded.items()}})


def axis_key(axis: str) -> str:
    return f"model.{axis}" if axis in SHORT_AXES else axis


@dataclass
class Catalog:
    """The validated content of one experiments.yaml."""

    source: str  # the file, as named in messages
    default_protocol: str
    protocols: dict[str, RunConfig]
    descriptions: dict[str, str]
    experiments: dict[str, Experiment]
    protocol_seeds: dict[str, tuple[int, ...] | None] = field(default_factory=dict)
    # protocol -> {flat key: the protocol of its base chain that set it} (vil-ablate show)
    protocol_keys: dict[str, dict[str, str]] = field(default_factory=dict)

    def seeds_for(
        self, exp: Experiment, protocol: str | None, cli: list[int] | None = None
    ) -> tuple[int, ...]:
        """Seeds of a sweep: --seeds, else the experiment's, else the protocol's, else (0,)."""
        if cli:
            return tuple(cli)
        if exp.seeds_given:
            return exp.seeds
        return self.protocol_seeds.get(protocol or self.default_protocol) or exp.seeds

    def protocol(self, name: str | None) -> RunConfig:
        name = name or self.default_protocol
        if name not in self.protocols:
            valid = ", ".join(self.protocols)
            raise ConfigError(f"{self.source}: unknown protocol {name!r}; valid: {valid}")
        return copy.deepcopy(self.protocols[name])

    def experiment(self, name: str) -> Experiment:
        if name not in self.experiments:
            valid = ", ".join(self.experiments)
            raise ConfigError(f"{self.source}: unknown experiment {name!r}; valid: {valid}")
        return self.experiments[name]


def find_experiments_file(path: str | Path | None = None) -> Path:
    """``path`` if given, else ./experiments.yaml if present, else the package's copy."""
    if path is not None:
        return Path(path)
    local = Path("experiments.yaml")
    return local if local.is_file() else PACKAGE_FILE


def _read(file: Path, source: str) -> dict:
    """The YAML mapping of an experiments file; one line naming the file if it is not one."""
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"{file}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of {', '.join(TOP_KEYS)}")
    return raw


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate an experiments file (see module docstring)."""
    file = find_experiments_file(path)
    bundled = file.resolve() == PACKAGE_FILE.resolve()
    source = file.name if bundled else str(file)
    raw = _read(file, source)
    _keys(raw, TOP_KEYS, source, "")
    if not bundled and "protocols" not in raw:  # a file of experiments only: the bundled
        base = _read(PACKAGE_FILE, PACKAGE_FILE.name)  # protocols (smoke, demo, paper, ...)
        raw = {**raw, "protocols": base["protocols"]}
        raw.setdefault("default_protocol", base.get("default_protocol", "paper"))
    _imports(raw.get("imports"), source, file.parent)  # first: the names they register
    protos = _mapping(raw.get("protocols", {}), source, "protocols")
    resolved = {name: _resolve(name, protos, source, ()) for name in protos}
    seeds = {name: _protocol_seeds(name, protos, source) for name in protos}
    descriptions = {n: str((p or {}).get("description", "")).strip() for n, p in protos.items()}
    default = raw.get("default_protocol", "paper" if "paper" in resolved else None)
    if default not in resolved:
        valid = ", ".join(resolved) or "none: protocols: defines none"
        raise ConfigError(f"{source}: default_protocol: unknown {default!r}; valid: {valid}")
    exps = _mapping(raw.get("experiments", {}), source, "experiments")
    experiments = {n: _experiment(n, e, source) for n, e in exps.items()}
    keys = {name: protocol_keys(name, protos) for name in protos}
    return Catalog(source, default, resolved, descriptions, experiments, seeds, keys)


def _imports(value: Any, source: str, base: Path) -> None:
    """``imports: [my_parts, parts/more.py]``: modules, or files relative to the file."""
    if value is None:
        return
    if not isinstance(value, list):
        raise ConfigError(f"{source}: imports: expected a list of modules or .py files")
    import_all(value, f"{source}: imports", base)


def _mapping(value: Any, source: str, path: str) -> dict:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {path}: expected a mapping, got {value!r}")
    return dict(value)


def _keys(value: Any, valid: tuple[str, ...], source: str, prefix: str) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or '<top>'}: expected a mapping")
    for key in value:
        if key not in valid:
            msg = f"unknown key; valid: {', '.join(valid)}"
            raise ConfigError(f"{source}: {prefix}{key}: {msg}")


def _resolve(name: str, protos: dict, source: str, seen: tuple[str, ...]) -> RunConfig:
    """A protocol = its base (recursively; none = the defaults) + its own overrides."""
    if name in seen:
        raise ConfigError(f"{source}: protocols.{name}.base: cycle {' -> '.join(seen + (name,))}")
    prefix = f"protocols.{name}."
    spec = protos[name] or {}
    _keys(spec, PROTOCOL_KEYS, source, prefix)
    base_name = spec.get("base")
    if base_name is None:
        base = RunConfig()
    elif base_name not in protos:
        valid = ", ".join(protos)
        raise ConfigError(f"{source}: {prefix}base: unknown protocol {base_name!r}; valid: {valid}")
    else:
        base = _resolve(base_name, protos, source, seen + (name,))
    sections = {k: v for k, v in spec.items() if k in ("model", "data", "train")}
    return apply(base, sections, source, prefix)


def _protocol_seeds(name: str, protos: dict, source: str) -> tuple[int, ...] | None:
    """A protocol's ``seeds:`` (inherited from its base chain), or None when none names any."""
    seen: list[str] = []
    while name is not None and name not in seen:  # cycles were reported by _resolve
        seen.append(name)
        spec = protos[name] or {}
        if "seeds" in spec:
            return _seed_list(spec["seeds"], source, f"protocols.{name}.seeds")
        name = spec.get("base")
    return None


def _seed_list(seeds: Any, source: str, path: str) -> tuple[int, ...]:
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        raise ConfigError(f"{source}: {path}: expected a list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source}: {path}: duplicate seeds in {seeds!r}")
    return tuple(seeds)


def _experiment(name: str, spec: Any, source: str) -> Experiment:
    prefix = f"experiments.{name}."
    _keys(spec, EXPERIMENT_KEYS, source, prefix)
    axis = _check_axis(spec.get("axis"), source, f"{prefix}axis")
    fixed = _mapping(spec.get("model", {}) or {}, source, f"{prefix}model")
    merge(ViLConfig(), fixed, source, f"{prefix}model.", "model.")
    raw_variants = spec.get("variants")
    if not isinstance(raw_variants, list) or not raw_variants:
        raise ConfigError(f"{source}: {prefix}variants: expected a non-empty list")
    variants = tuple(
        _variant(item, axis, source, f"{prefix}variants[{i}]")
        for i, item in enumerate(raw_variants)
    )
    names = [v.name for v in variants]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: {prefix}variants: duplicate names {dupes}")
    reference = spec.get("reference", names[0])
    if reference not in names:
        msg = f"reference {reference!r} is not a variant; valid: {', '.join(names)}"
        raise ConfigError(f"{source}: {prefix}reference: {msg}")
    given = "seeds" in spec
    seeds = _seed_list(spec["seeds"], source, f"{prefix}seeds") if given else (0,)
    description = str(spec.get("description", "")).strip()
    tune = parse_tune(spec.get("tune"), source, prefix)
    match = _match(spec.get("match"), source, f"{prefix}match")
    confounds = parse_confounds(spec.get("confounds"), axis_key(axis), source, f"{prefix}confounds")
    return Experiment(name, axis, reference, variants, seeds, fixed, description, given, tune,
                      match, confounds)  # fmt: skip


def _match(raw: Any, source: str, path: str) -> Match | None:
    """``params`` | ``flops`` | ``{by: ..., key: model.depth | model.dim, step: N}``."""
    if raw is None:
        return None
    spec = {"by": raw} if isinstance(raw, str) else raw
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{source}: {path}: expected {' or '.join(MATCH_BY)} or a mapping")
    _keys(spec, ("by", "key", "step"), source, f"{path}.")
    by, key, step = spec.get("by"), spec.get("key", "model.depth"), spec.get("step", 1)
    if by not in MATCH_BY:
        raise ConfigError(f"{source}: {path}: unknown {by!r}; valid: {', '.join(MATCH_BY)}")
    if key not in MATCH_KEYS:
        raise ConfigError(f"{source}: {path}.key: unknown {key!r}; valid: {', '.join(MATCH_KEYS)}")
    if not _is_int(step) or step < 1:
        raise ConfigError(f"{source}: {path}.step: expected a positive integer, got {step!r}")
    return Match(by, key, step)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _axis_keys() -> list[str]:

    return sorted(flatten(to_dict(RunConfig())))


def _check_axis(axis: Any, source: str, path: str) -> str:
    """``traversal``, ``pooling`` or a leaf key path of RunConfig (``model.init``)."""
    if axis in SHORT_AXES or (isinstance(axis, str) and axis in _axis_keys()):
        return axis
    valid = ", ".join([*SHORT_AXES, "or a config key such as model.init"])
    raise ConfigError(f"{source}: {path}: unknown axis {axis!r}; valid: {valid}")


def _variant(item: Any, axis: str, source: str, path: str) -> Variant:
    """``"bi"``, ``{name: uni, pooling: last, set: {train.epochs: 3}}`` or, for any axis,
    ``{name: deep, value: 12}`` (the axis value, when it is not the name itself)."""
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise ConfigError(f"{source}: {path}: expected a name or a mapping with 'name'")
    model = {k: v for k, v in item.items() if k not in ("name", "set", "value")}
    value = item.get("value", item["name"])
    if axis in SHORT_AXES:
        model.setdefault(axis, value)  # checked with the model keys, named as written
    merge(ViLConfig(), model, source, f"{path}.", "model.")
    sets = _mapping(item.get("set", {}) or {}, source, f"{path}.set")
    overrides = dotted({**{f"model.{k}": v for k, v in model.items()}, **sets,
                        axis_key(axis): value})  # fmt: skip
    apply(RunConfig(), overrides, source, f"{path}.")
    return Variant(item["name"], overrides)
