"""Where and how a run executes: device, precision, compile, DDP rank, seeds, versions."""

from __future__ import annotations

import os
import platform
import random
import re
import resource
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ablations.schema.config import TrainConfig
from ablations.schema.device import resolve_compile, resolve_device, resolve_precision


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
    precision = resolve_precision(cfg.precision, str(device))
    compile_on = resolve_compile(cfg.compile, str(device))
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
    for pkg in ("vil-ablate", *_dependencies()):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    out["cuda"] = torch.version.cuda
    out["cudnn"] = str(torch.backends.cudnn.version()) if torch.cuda.is_available() else None
    out["platform"] = platform.platform()
    return out


def _dependencies() -> list[str]:
    """The package's declared run-time dependencies (torch, torchvision, numpy, ...)."""
    try:
        reqs = metadata.requires("vil-ablate") or []
    except metadata.PackageNotFoundError:
        return ["torch", "torchvision", "numpy"]
    names = (re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0] for r in reqs if "extra ==" not in r)
    return list(dict.fromkeys(names))


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
    cores, threads = os.cpu_count() or 1, torch.get_num_threads()
    return f"cpu ({cores} core{'s' * (cores != 1)}, {threads} thread{'s' * (threads != 1)})"


def init_distributed() -> bool:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=timedelta(hours=2))  # idle ranks wait on rank 0
    return True
