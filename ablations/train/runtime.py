"""Where and how a run executes: device, precision, compile, DDP rank, seeds, versions."""

from __future__ import annotations

import os
import platform
import random
import resource
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ablations.config import TrainConfig


@dataclass(frozen=True)
class Runtime:
    """Resolved execution settings of one run (``auto`` values decided here)."""

    device: torch.device
    precision: str  # "bf16" | "fp32"
    compile: bool
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


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
    from ablations.config import ConfigError

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


def set_fast_math(device: torch.device) -> None:
    """TF32 matmuls/convolutions for the float32 parts (outside bf16 autocast) on CUDA; the
    cuDNN autotuner for the fixed input shapes of training. No effect on CPU numerics."""
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True


def resolve_runtime(cfg: TrainConfig) -> Runtime:
    """Decide device, precision and compile; read rank/world from torch.distributed."""
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        set_fast_math(device)
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    compile_on = cfg.compile == "on" or (cfg.compile == "auto" and device.type == "cuda")
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    return Runtime(device, precision, compile_on, rank, world)


def step_seed(seed: int, epoch: int, step: int) -> int:
    """A seed for (run seed, epoch, step): each step's randomness independent of history.

    Re-seeding the global RNGs before every step makes a run resumed mid-epoch draw exactly
    what the uninterrupted run drew (augmentation, mixing, drop path), with no RNG replay.
    """
    return int(np.random.SeedSequence([seed, epoch, step]).generate_state(1, np.uint64)[0] >> 1)


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """All RNG states (stored in checkpoints)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated tensor memory; CPU: the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def versions() -> dict[str, str | None]:
    """Versions of everything that can change a number."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "optuna", "numpy", "vil-ablate"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    out["cuda"] = torch.version.cuda
    out["cudnn"] = str(torch.backends.cudnn.version()) if torch.cuda.is_available() else None
    out["platform"] = platform.platform()
    return out


def git_revision() -> str | None:
    """``git describe --always --dirty`` of the source tree, or None outside a checkout."""
    here = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def device_name(device: torch.device) -> str:
    """A human-readable device description for results."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
