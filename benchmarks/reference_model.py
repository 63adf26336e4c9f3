"""Our ViL against the public NX-AI/vision-lstm model (v1 ``vision_lstm.py``), and the
machine's matrix-product rate on the model's shapes (the bound a train step could reach).

The reference is never copied into this project: it is imported from a checkout given by
``--reference-path`` or ``VIL_REFERENCE_PATH`` (the folder holding ``vision_lstm/``).
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import vil
from benchmarks.common import Timing, measure

ENV_VAR = "VIL_REFERENCE_PATH"


def load_reference(path: str | None) -> tuple[type | None, str]:
    """(VisionLSTM class of the reference, '') or (None, why it is skipped)."""
    path = path or os.environ.get(ENV_VAR)
    if not path:
        return None, f"no reference checkout: pass --reference-path or set {ENV_VAR}"
    root = Path(path).expanduser().resolve()
    if not (root / "vision_lstm" / "vision_lstm.py").is_file():
        return None, f"{root} has no vision_lstm/vision_lstm.py (clone NX-AI/vision-lstm there)"
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("vision_lstm.vision_lstm")
    except ImportError as err:
        return None, f"cannot import the reference from {root}: {err}"
    return module.VisionLSTM, ""


def build_pair(
    ref_cls: type, size: str, img: int, patch: int, classes: int
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Our alternating ViL and the reference v1 ViL in the trained layout (``legacy_norm``:
    the post-blocks norm), bilateral_avg pooling, no drop path: the same model (same
    parameter count; ``vil.load_reference_state_dict(ours, ref.state_dict(), "hub_v1")``
    would give it the same weights, which timing does not need)."""
    dim, depth = vil.SIZES[size]
    ours = vil.create_model(size, "alternating", "bilateral_avg", img, patch, classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference warns that v1 is an old design
        ref = ref_cls(
            dim=dim,
            depth=depth,
            input_shape=(3, img, img),
            patch_size=patch,
            output_shape=(classes,),
            pooling="bilateral_avg",
            alternation="bidirectional",
            drop_path_rate=0.0,
            legacy_norm=True,
        )
    return ours, ref


def train_step_fn(model: torch.nn.Module, batch: int, img: int, classes: int):
    """A closure running one fp32 train step (forward, cross-entropy, backward, AdamW)."""
    images = torch.randn(batch, 3, img, img)
    labels = torch.randint(0, classes, (batch,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    model.train()

    def step() -> None:
        F.cross_entropy(model(images), labels).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def interleaved(steps: dict[str, Any], rounds: int, repeats: int) -> dict[str, Timing]:
    """Time the named steps in alternating rounds (A B A B ...) so that load changes on a
    shared machine hit both alike; the median is over all rounds' calls."""
    cpu = torch.device("cpu")
    times: dict[str, list[float]] = {name: [] for name in steps}
    cpu_times: dict[str, list[float]] = {name: [] for name in steps}
    first: dict[str, Timing] = {}
    for r in range(rounds):
        for name, fn in steps.items():
            t = measure(fn, cpu, warmup=1 if r == 0 else 0, repeats=repeats, memory=r == 0)
            times[name] += t.times_s
            cpu_times[name] += t.cpu_times_s
            first.setdefault(name, t)
    return {
        n: Timing(times[n], first[n].peak_mib, first[n].memory_method, cpu_times_s=cpu_times[n])
        for n in steps
    }


def matmul_shapes(batch: int, dim: int, tokens: int, heads: int) -> dict[str, tuple]:
    """The model's main products: name -> (kind, operand shapes)."""
    inner = 2 * dim
    dh = inner // heads
    return {
        f"proj_up ({batch * tokens},{dim})x({dim},{2 * inner})": ("linear", (batch * tokens, dim), (2 * inner, dim)),  # noqa: E501
        f"proj_down ({batch * tokens},{inner})x({inner},{dim})": ("linear", (batch * tokens, inner), (dim, inner)),  # noqa: E501
        f"cell qk^T {batch * heads}x({tokens}x{dh})x({dh}x{tokens})": ("bmm", (batch * heads, tokens, dh), (batch * heads, dh, tokens)),  # noqa: E501
        f"cell Cv {batch * heads}x({tokens}x{tokens})x({tokens}x{dh})": ("bmm", (batch * heads, tokens, tokens), (batch * heads, tokens, dh)),  # noqa: E501
    }  # fmt: skip


def matmul_rates(batch: int, dim: int, tokens: int, heads: int, repeats: int) -> dict[str, Any]:
    """GFLOP/s of F.linear / torch.matmul on each main shape (median of ``repeats`` x 10 calls)."""
    out = {}
    for name, (kind, a_shape, b_shape) in matmul_shapes(batch, dim, tokens, heads).items():
        a, b = torch.randn(a_shape), torch.randn(b_shape)
        fn = (lambda a=a, b=b: F.linear(a, b)) if kind == "linear" else (lambda a=a, b=b: a @ b)
        flops = 2 * a.numel() * (b_shape[0] if kind == "linear" else b_shape[-1])

        def ten(fn=fn) -> None:
            for _ in range(10):
                fn()

        t = measure(ten, torch.device("cpu"), warmup=1, repeats=repeats, memory=False)
        out[name] = {
            "kind": kind,
            "gflop": flops / 1e9,
            "gflops_per_s": 10 * flops / t.median_s / 1e9,
        }
    return out


def matmul_bound(model: torch.nn.Module, rates: dict[str, Any]) -> dict[str, Any]:
    """Images/s a train step would reach if all its FLOPs (3x forward) ran at the measured
    matmul rates: projections at the proj_up/proj_down rates, the cell's products at the
    cell rates, every other counted FLOP (q/k/v, gates, patch embed, head) at the best rate."""
    c = model.cfg
    n_tok, inner = c.grid[0] * c.grid[1], c.expansion * c.dim
    dh = inner // c.num_heads
    dirs = sum(len(model.traversal.block_directions(i)) for i in range(c.depth))
    fwd = {  # forward FLOPs per image of each product, summed over blocks
        "proj_up": 2 * n_tok * c.dim * 2 * inner * c.depth,
        "proj_down": 2 * n_tok * inner * c.dim * c.depth,
        "cell qk^T": 2 * n_tok * n_tok * dh * c.num_heads * dirs,
        "cell Cv": 2 * n_tok * n_tok * dh * c.num_heads * dirs,
    }
    total = vil.count_flops(model)
    rate = {k: next(v["gflops_per_s"] for n, v in rates.items() if n.startswith(k)) for k in fwd}
    seconds = sum(3 * f / (rate[k] * 1e9) for k, f in fwd.items())
    other = max(total - sum(fwd.values()), 0.0)
    seconds += 3 * other / (max(rate.values()) * 1e9)
    return {
        "train_gflop_per_image": 3 * total / 1e9,
        "other_fwd_gflop_per_image": other / 1e9,
        "bound_images_per_s": 1.0 / seconds,
        "bound_gflops_per_s": 3 * total / seconds / 1e9,
    }
