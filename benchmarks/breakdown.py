"""Where a ViL step's time goes: mLSTM cell, projections (up/down, q/k/v, gates), conv, rest.

Method (the model has no ``record_function`` labels, and op-level profiles cannot tell a
projection's matmul from the cell's): during one forward pass the component functions are
wrapped *in this process only* (``vil.block.mlstm``, ``vil.layers.causal_conv`` /
``grid_conv``, ``vil.layers.headwise``, ``fold_gates`` / ``per_set_linear``, and hooks on every
``proj_up`` / ``proj_down``) to record the exact arguments of every call. Each component is
then timed in isolation by replaying all its recorded calls (forward, or forward + backward
for the train step) on those real shapes. "rest" is the measured full step minus the
components: norms, SiLU/gating, permutations, patch embedding, head, loss and optimizer.
Isolated calls run with warm caches, so the components are a slight underestimate. On the
CPU all of it is process CPU time (steady on a shared machine), on CUDA wall time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import vil.block
import vil.layers
from benchmarks.common import Timing, measure

# category -> (module, attribute) of the functions wrapped while recording
PATCHES: dict[str, list[tuple[Any, str]]] = {
    "cell": [(vil.block, "mlstm")],
    "conv": [(vil.layers, "causal_conv"), (vil.layers, "grid_conv")],
    "qkv_headwise": [(vil.layers, "headwise")],
    "gates": [(vil.layers, "fold_gates"), (vil.layers, "per_set_linear")],
}
# the projections are proj_up_down (dense), qkv_headwise (block-diagonal 4x4) and gates
CATEGORIES = ("cell", "proj_up_down", "qkv_headwise", "gates", "conv")
Call = tuple[Callable[..., torch.Tensor], tuple, dict]


def _snapshot(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().clone().requires_grad_(x.requires_grad and x.is_floating_point())
    return x


def _recorder(store: list[Call], fn: Callable) -> Callable:
    def wrapped(*args, **kwargs):
        store.append((fn, tuple(_snapshot(a) for a in args), dict(kwargs)))
        return fn(*args, **kwargs)

    return wrapped


@contextlib.contextmanager
def record_calls(model: nn.Module) -> Iterator[dict[str, list[Call]]]:
    """Record every component call of the forward passes run inside the context."""
    calls: dict[str, list[Call]] = {c: [] for c in CATEGORIES}
    saved = []
    for cat, targets in PATCHES.items():
        for owner, name in targets:
            original = getattr(owner, name)
            saved.append((owner, name, original))
            setattr(owner, name, _recorder(calls[cat], original))

    def linear_hook(mod: nn.Module, inputs: tuple, _out: torch.Tensor) -> None:
        weight = mod.weight.detach().clone().requires_grad_(True)
        calls["proj_up_down"].append((F.linear, (_snapshot(inputs[0]), weight), {}))

    hooks = [
        getattr(m, n).register_forward_hook(linear_hook)
        for m in model.modules()
        if isinstance(m, vil.block.MLSTMLayer)
        for n in ("proj_up", "proj_down")
    ]
    try:
        yield calls
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
        for h in hooks:
            h.remove()


def _outputs(out: Any) -> tuple[torch.Tensor, ...]:
    """A component's tensor outputs (headwise and fold_gates return several)."""
    return tuple(out) if isinstance(out, tuple | list) else (out,)


def _replay(calls: list[Call], backward: bool, ctx: Callable) -> Callable[[], None]:
    grads = []
    with torch.no_grad(), ctx():
        for fn, args, kwargs in calls:
            outs = _outputs(fn(*args, **kwargs))
            grads.append(tuple(torch.randn_like(o) for o in outs) if backward else None)

    def run() -> None:
        for (fn, args, kwargs), g in zip(calls, grads, strict=True):
            if backward:
                with ctx():
                    outs = _outputs(fn(*args, **kwargs))
                torch.autograd.backward(outs, g)
            else:
                with torch.no_grad(), ctx():
                    fn(*args, **kwargs)

    return run


def time_components(
    calls: dict[str, list[Call]],
    total: Timing,
    device: torch.device,
    backward: bool,
    ctx: Callable = contextlib.nullcontext,
    warmup: int = 1,
    repeats: int = 3,
) -> dict[str, Any]:
    """Median seconds per component (replayed) and the rest, with fractions of the total.

    On the CPU the seconds are process CPU time (all threads), much steadier than wall time
    when other processes share the cores; on CUDA they are wall time."""
    key = "median_cpu_s" if device.type == "cpu" else "median_s"
    parts = {}
    for cat in CATEGORIES:
        if calls[cat]:
            run = _replay(calls[cat], backward, ctx)
            parts[cat] = measure(run, device, warmup, repeats, memory=False)
    total_s = getattr(total, key)
    seconds = {c: getattr(t, key) for c, t in parts.items()}
    seconds["rest"] = total_s - sum(seconds.values())
    return {
        "clock": "process CPU time" if device.type == "cpu" else "wall time",
        "seconds": seconds,
        "fraction": {c: s / total_s for c, s in seconds.items()},
        "calls": {c: len(v) for c, v in calls.items()},
        "total_s": total_s,
    }
