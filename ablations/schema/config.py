"""Typed run configuration: small dataclasses whose defaults ARE the paper's protocol.

YAML protocols and ``--set a.b.c=value`` hold only overrides of these defaults. Every override
is checked against the field's type and, where it names a registered part, the registry; a
problem raises ``ConfigError`` with one line naming the source, the key path and the choices.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ablations.schema.data_config import AUGMENTS, SPLITS, DataConfig
from ablations.schema.datasets import KINDS
from ablations.schema.device import check_device, resolve_precision
from ablations.schema.errors import ConfigError, DataConfigError
from ablations.schema.imports import science_keys
from vil import INITS, POOLINGS, RELEASES, SIZES, TRAVERSALS, ViLConfig
from vil.mlstm import form_names

__all__ = ["ConfigError", "DataConfig", "RunConfig", "TrainConfig", "ViLConfig"]


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping (plain PyTorch loop, see ablations/train/)."""

    epochs: int = 400  # paper: 400 epochs on ImageNet-100
    batch_size: int = 1024  # global batch (split over DDP ranks)
    lr: float = 1e-3  # peak AdamW lr at batch 1024; scaled by batch_size / 1024
    min_lr: float = 1e-6  # end of the cosine decay
    warmup_epochs: float = 50.0  # linear warm-up (per step) before the cosine
    weight_decay: float = (
        0.05  # not applied to 1-D params (biases, norms, gate biases), pos-embed, cls
    )
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    grad_clip: float | None = 1.0  # max global grad norm; None = no clipping
    label_smoothing: float = 0.0  # paper: none (one-hot targets with Mixup/CutMix)
    eval_every: int = 10  # evaluate every N epochs (and always after the last)
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    compile: str = "auto"  # torch.compile: auto (on for CUDA) | on | off
    seed: int = 0  # seeds init, data order, augmentation and mixing
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N | mps
    ckpt_every: int = 1  # write checkpoint.pt every N epochs (and on interrupt)
    max_steps: int | None = None  # stop after this many optimiser steps (tests, quick checks)
    inject_nan_at_step: int | None = None  # test hook: make the loss NaN at this step
    time_limit_s: float | None = None  # stop training (not failing) after this many seconds
    micro_batch: int | None = None  # per-rank micro-batch; None = the per-rank batch in one pass
    log_every: int = 50  # read loss, non-finite flag, DDP stop flag every N steps (+ epoch end)
    prefetch: int = 4  # batches each DataLoader worker loads ahead (data.num_workers > 0)
    trackers: list[str] = field(default_factory=list)  # tensorboard, mlflow, wandb (rank 0)


@dataclass
class RunConfig:
    """One training run: model + data + training."""

    model: ViLConfig = field(default_factory=ViLConfig)  # img_size, num_classes: from data
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# Fields whose value must be one of a known set. The registered parts are read from their
# vil.Registry when a value is checked, so a part registered later (``--import``) is valid
# everywhere at once.
CHOICES: dict[str, Callable[[], list[Any]]] = {
    "model.size": SIZES.names,
    "model.traversal": TRAVERSALS.names,
    "model.pooling": POOLINGS.names,
    "model.release": RELEASES.names,
    "model.init": INITS.names,
    "model.conv": lambda: ["causal1d", "grid2d"],
    "model.cell": form_names,  # kernel forms only where mlstm-kernels is installed
    "train.precision": lambda: ["auto", "bf16", "fp32"],
    "train.compile": lambda: ["auto", "on", "off"],
    "data.dataset": KINDS.names,
    "data.augment": lambda: list(AUGMENTS),
    "data.split": lambda: list(SPLITS),
}
# YAML 1.1 reads on/off/yes/no as booleans; accept them for these string switches.
_BOOL_WORDS = {"train.compile": {True: "on", False: "off"}}


def _fail(source: str, path: str, msg: str) -> ConfigError:
    return ConfigError(f"{source}: {path}: {msg}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, source: str, path: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widened to float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        for arg in (a for a in typing.get_args(tp) if a is not type(None)):
            try:
                return _coerce(value, arg, source, path)
            except ConfigError:
                continue
        raise _fail(source, path, f"expected {_type_name(tp)}, got {value!r}")
    if origin is list:  # a YAML list, or "a,b" as --set writes it
        (arg,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise _fail(source, path, f"expected a list, got {value!r}")
        return [_coerce(v, arg, source, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise _fail(source, path, f"expected a list of {len(args)} values, got {value!r}")
        return tuple(
            _coerce(v, a, source, f"{path}[{i}]")
            for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
    }
    if tp in ok and ok[tp](value):
        return float(value) if tp is float else value
    raise _fail(source, path, f"expected {_type_name(tp)}, got {value!r}")


def _check_choice(value: Any, source: str, path: str, rel: str) -> Any:
    """``rel`` is the key relative to RunConfig (CHOICES key); ``path`` is for the message."""
    if rel in _BOOL_WORDS and isinstance(value, bool):
        value = _BOOL_WORDS[rel][value]
    if rel in CHOICES and value is not None:
        valid = CHOICES[rel]()
        if value not in valid:
            what = rel.rsplit(".", 1)[-1]
            choices = ", ".join(map(str, valid))
            raise _fail(source, path, f"unknown {what} {value!r}; valid: {choices}")
    return value


def merge(obj: Any, overrides: Any, source: str, prefix: str = "", rel: str = "") -> Any:
    """Copy of dataclass ``obj`` with validated nested ``overrides``.

    ``prefix``: where the overrides sit in ``source`` (messages); ``rel``: the key path of
    ``obj`` inside RunConfig (e.g. ``model.``), which selects the CHOICES to check.
    """
    if not isinstance(overrides, Mapping):
        where = prefix.rstrip(".") or "<top>"
        raise _fail(source, where, f"expected a mapping, got {overrides!r}")
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        path, rpath = f"{prefix}{key}", f"{rel}{key}"
        if key not in names:
            raise _fail(source, path, f"unknown key; valid: {', '.join(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = merge(current, value or {}, source, f"{path}.", f"{rpath}.")
            continue
        if rpath in _BOOL_WORDS and isinstance(value, bool):
            value = _BOOL_WORDS[rpath][value]
        value = _coerce(value, hints[key], source, path)
        changes[key] = _check_choice(value, source, path, rpath)
    return dataclasses.replace(obj, **changes)


def apply(cfg: RunConfig, overrides: Any, source: str, prefix: str = "") -> RunConfig:
    """Apply nested overrides ``{"train": {"epochs": 5}}`` to a RunConfig (validated).

    ``prefix`` is where the overrides sit inside ``source`` (e.g. ``protocols.demo.``), so
    messages name the full key path as the user wrote it.
    """
    return merge(cfg, overrides, source, prefix, rel="")


def parse_set(items: list[str] | None, source: str = "--set") -> dict[str, Any]:
    """``["train.epochs=5", "model.size=nano"]`` -> nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source}: {item!r}: expected KEY.PATH=VALUE")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(
                f"{source}: {key}: cannot parse {raw!r} ({e.__class__.__name__})"
            ) from None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: {key}: conflicts with an earlier --set")
        node[parts[-1]] = value
    return out


def dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"train.epochs": 5}`` style keys -> nested dict (used by variants' ``set:``)."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        node = out
        *parents, leaf = str(key).split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) for YAML/JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def from_dict(d: Mapping[str, Any], source: str = "config") -> RunConfig:
    """Rebuild a RunConfig from ``to_dict`` output (validated like any override)."""
    return apply(RunConfig(), d, source)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"a.b.c": value}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# The run's budget: where training may stop, not what it trains. A run the budget stopped
# before its planned last step is TRUNCATED (never a result); one it did not stop is the
# run without it. So the budget is not science, and a checkpoint resumes under a new one.
BUDGET = frozenset({"train.max_steps", "train.time_limit_s"})
# Keys that do not change what a run measures (where and how fast it runs, paths, logging,
# its budget). They are left out of a run's fingerprint: changing them never invalidates a
# finished run.
NOT_SCIENCE = BUDGET | frozenset({
    "train.device", "train.compile", "train.ckpt_every", "train.eval_every",
    "train.log_every", "train.micro_batch", "train.prefetch", "train.trackers", "data.root",
    "data.cache_dir",
    "data.num_workers", "data.strict", "data.download", "model.cell",
})  # fmt: skip
# Science, but hashed only when off: the cache's stored squares (PIL, central square, resized
# to stored_size) are other pixels than decoding each file (tests/test_data_cache.py), so an
# uncached run is another experiment; runs at the default keep the fingerprints they had.
# The same for keys added after runs were made: at their default a run trains what it trained
# before the key existed (model.init_seed None: init drawn from train.seed; no label noise).
HASHED_WHEN_CHANGED = {"data.cache": True, "model.init_seed": None, "data.label_noise": 0.0}


# The training recipe's version: bump it in any change that alters what a run with an
# unchanged config trains (augmentation draws, data order, init, loss, schedule...). It enters
# every fingerprint, so a sweep reports older finished runs as made with another config
# ("recipe.version 1 -> 2") instead of reusing them, and the report never pairs two versions.
# 1: the recipe until the num_workers=0 augmentation-draw change; 2: since then; 3: DDP
# ranks seed each sample's augmentation by its global position (ranks drew alike before).
RECIPE_VERSION = 3
RECIPE_KEY = "recipe.version"


def science(cfg: RunConfig) -> dict[str, Any]:
    """The flat science part of ``cfg``: what a run's fingerprint hashes (``RECIPE_KEY``
    included: the code's recipe version, not a config key).

    ``train.precision: auto`` is replaced by what it resolves to on this machine (bf16 on
    CUDA, fp32 elsewhere): the same config on another device is another experiment. A
    part registered by an imported file adds ``imports.<module>: <sha256 of the file>``.
    """
    flat = {k: v for k, v in flatten(to_dict(cfg)).items() if k not in NOT_SCIENCE}
    for key, default in HASHED_WHEN_CHANGED.items():
        if flat.get(key) == default:
            del flat[key]
    flat["train.precision"] = resolve_precision(cfg.train.precision, cfg.train.device)
    flat.update(science_keys(flat))  # the hash of a user's file whose parts this run uses
    flat[RECIPE_KEY] = RECIPE_VERSION
    return flat


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``["train.epochs 2 -> 1", ...]`` between two flat science dicts."""
    keys = sorted(set(old) | set(new))
    return [f"{k} {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k)]


def validate(cfg: RunConfig, source: str = "config", data: bool = True) -> RunConfig:
    """Cross-field checks that need the whole config (data settings, size/patch fit).

    ``data=False`` skips the data checks (e.g. a dry run without the dataset on disk).
    """
    try:
        if data:
            cfg.data.validate()
    except DataConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    if cfg.data.img_size % cfg.model.patch_size:
        raise ConfigError(
            f"{source}: model.patch_size: {cfg.model.patch_size} does not divide "
            f"data.img_size {cfg.data.img_size}"
        )
    for key in ("epochs", "batch_size", "eval_every", "ckpt_every", "log_every", "prefetch"):
        if getattr(cfg.train, key) < 1:
            raise ConfigError(f"{source}: train.{key}: must be >= 1")
    _check_micro_batch(cfg.train, source)
    _check_model_from_data(cfg.model, source)
    seed = cfg.model.init_seed
    if seed is not None and not 0 <= seed < 2**63:
        raise ConfigError(
            f"{source}: model.init_seed: {seed} is negative or too large; valid: "
            "an integer in [0, 2**63), or null (the run seed, train.seed)"
        )
    try:
        check_device(cfg.train.device, available=data)  # a dry run may plan for another machine
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return cfg


def _check_model_from_data(m: ViLConfig, source: str) -> None:
    """In a run, the model's image size and class count come from the data (one home)."""
    for key, home in (("img_size", "data.img_size"), ("num_classes", "the dataset")):
        if getattr(m, key) is not None:
            raise ConfigError(
                f"{source}: model.{key}: set by {home} in a run; valid: null (set {home})"
            )


def world_size() -> int:
    """DDP ranks of this launch (torchrun's WORLD_SIZE; 1 without it)."""
    return max(int(os.environ.get("WORLD_SIZE", 1)), 1)


def per_rank_batch(tc: TrainConfig, world: int | None = None) -> int:
    """Images per rank and step: the global batch over the ranks (the one home of it)."""
    return tc.batch_size // (world or world_size())


def _check_micro_batch(tc: TrainConfig, source: str) -> None:
    """micro_batch must split the per-rank batch (batch_size / WORLD_SIZE) evenly."""
    if tc.micro_batch is None:
        return
    world = world_size()
    per_rank = per_rank_batch(tc, world)
    if tc.micro_batch < 1 or per_rank % tc.micro_batch:
        raise ConfigError(
            f"{source}: train.micro_batch: {tc.micro_batch} does not divide the per-rank batch "
            f"{per_rank} (train.batch_size {tc.batch_size} / {world} ranks); valid: a divisor "
            f"of {per_rank}, or null"
        )
