"""checkpoint.pt: everything needed to resume a run exactly, written atomically.

Position semantics: ``epoch`` complete epochs plus ``step_in_epoch`` steps of the next one
are done; ``history`` holds the metrics rows of the complete epochs and ``acc`` the running
sums of the unfinished one. With per-step RNG seeding (runtime.step_seed) this is enough to
continue bit-exactly on CPU.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ablations.schema.config import NOT_SCIENCE, RunConfig, flatten, to_dict
from ablations.schema.files import atomic_write, naming_path
from ablations.train.runtime import rng_state

FORMAT = 1
# Settings that may change between the run and its resumption without invalidating it: what
# does not change the science (config.NOT_SCIENCE, the budget included), and the test hook.
RESUMABLE_CHANGES = NOT_SCIENCE | {"train.inject_nan_at_step"}


@dataclass
class Position:
    """Where a run stands, plus the bookkeeping a resume needs."""

    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0  # steps done in the unfinished epoch
    global_step: int = 0
    train_time_s: float = 0.0  # wall time in training steps (excludes eval)
    wall_time_s: float = 0.0  # wall time of the loop (includes eval)
    images: int = 0  # training images seen (global batch counted)
    history: list[dict[str, Any]] = field(default_factory=list)
    acc: dict[str, float] = field(default_factory=dict)  # unfinished epoch: loss_sum, steps, time
    resumes: int = 0  # times the run was resumed from this checkpoint file (the record's count)


def save(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    pos: Position,
    config: dict[str, Any],
) -> None:
    """Serialise to memory, then write atomically (a crash never leaves half a file)."""
    state = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "position": asdict(pos),
        "rng": rng_state(),
        "config": config,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue())


def load(path: Path) -> dict[str, Any] | None:
    """The checkpoint dict, or None when there is none."""
    if not Path(path).is_file():
        return None
    with naming_path(path, "read"):
        return torch.load(path, map_location="cpu", weights_only=False)


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Keys whose values differ in a way that makes resuming invalid. A key the old config
    lacks (a field added since) counts as its default, which keeps the old behaviour."""

    a, b = {**flatten(to_dict(RunConfig())), **flatten(old)}, flatten(new)
    keys = sorted(set(a) | set(b))
    return [k for k in keys if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES]


def restore(
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> Position:
    """Load states into the given objects; return the saved position."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return Position(**state["position"])
