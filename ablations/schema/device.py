"""Where a run executes: ``train.device`` checked and resolved, and what ``auto`` means.

The one home of "auto": the device (this rank's CUDA device if there is one), precision
(bf16 autocast on CUDA, fp32 elsewhere) and compile (on for CUDA). Training, fingerprints and
plans all read these functions.
"""

from __future__ import annotations

import os

import torch

from ablations.schema.errors import ConfigError

DEVICE_FORMS = "auto, cpu, cuda, cuda:N, mps"


def _valid_here() -> str:
    """The device names this machine can run, for error messages."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        names += ["cuda", "cuda:0" if n == 1 else f"cuda:0..cuda:{n - 1}"]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        names.append("mps")
    return ", ".join(names)


def check_device(name: str, available: bool = True) -> None:
    """Raise ConfigError (one line) if ``train.device`` is malformed or, with ``available``,
    not present on this machine. Cheap: the sweep calls it before any work."""
    key = f"train.device: {name!r}"
    if name in ("auto", "cpu"):
        return
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{key} is not a device; valid forms: {DEVICE_FORMS}") from None
    if dev.type not in ("cuda", "mps") or (dev.type == "mps" and dev.index):
        raise ConfigError(f"{key} is not supported; valid forms: {DEVICE_FORMS}")
    if not available:
        return
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key} requested but torch.backends.mps.is_available() is False; "
                          f"valid here: {_valid_here()}")  # fmt: skip
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key} requested but torch.cuda.is_available() is False; "
                          f"valid here: {_valid_here()}")  # fmt: skip
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"{key}: this machine has {torch.cuda.device_count()} CUDA devices; "
                          f"valid here: {_valid_here()}")  # fmt: skip


def resolve_device(name: str) -> torch.device:
    """``auto``: this rank's CUDA device if there is one, else the CPU; ``cuda``: this rank's
    CUDA device (LOCAL_RANK); ``cuda:N``: device N. Raises ConfigError when unavailable."""
    check_device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def on_cuda(device: str) -> bool:
    """Whether ``train.device`` runs on CUDA here (no availability check: a dry run may
    plan for another machine; the device itself is checked in ``check_device``)."""
    if device == "auto":
        return torch.cuda.is_available()
    return device.startswith("cuda")


def device_type(device: str) -> str:
    """``cuda``, ``cpu`` or ``mps``: what ``train.device`` resolves to here, without checks."""
    if on_cuda(device):
        return "cuda"
    kind = device.split(":")[0]
    return "cpu" if kind == "auto" else kind


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> bf16 on CUDA, fp32 elsewhere; explicit values unchanged."""
    if precision != "auto":
        return precision
    return "bf16" if device_type(device) == "cuda" else "fp32"


def resolve_compile(compile_mode: str, device: str) -> bool:
    """``on``, or ``auto`` on CUDA."""
    return compile_mode == "on" or (compile_mode == "auto" and device_type(device) == "cuda")
