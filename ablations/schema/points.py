"""The grid of an experiment: its points (variant x seed) and how a point's config differs
from the paper's protocol (derived key by key, not hand-written)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import vil
from ablations.schema.config import NOT_SCIENCE, flatten


@dataclass(frozen=True)
class Point:
    """One grid point: a variant (row) and a seed; its folder is ``runs/<variant>-s<seed>``."""

    variant: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.variant}-s{self.seed}"

    @property
    def run_dir(self) -> str:
        """Relative to the experiment folder."""
        return f"runs/{self.name}"

    @classmethod
    def parse(cls, name: str) -> Point | None:
        """``"quad_alternating-s3"`` -> Point("quad_alternating", 3); None if not a point name."""
        variant, sep, seed = name.rpartition("-s")
        return cls(variant, int(seed)) if sep and variant and seed.isdigit() else None


def points(variants: list[str], seeds: list[int]) -> list[Point]:
    return [Point(v, s) for v in variants for s in seeds]


# Keys whose difference from the paper protocol does not change what is measured.
NOT_DEVIATIONS = NOT_SCIENCE | {"train.seed", "train.precision", "train.inject_nan_at_step"}


# Keys of the built-in synthetic dataset only: the paper's ImageNet-100 has no such setting.
SYNTHETIC_ONLY = {"data.train_samples", "data.val_samples"}


def _size_text(size: Any) -> str:
    if size not in vil.SIZES:
        return str(size)
    dim, depth = vil.SIZES[size]
    return f"{size} ({dim}/{depth})"


def deviations(
    cfg: dict, paper: dict, axis_key: str, runtime: dict, paper_runtime: dict
) -> list[str]:
    """How ``cfg`` differs from the paper protocol, derived key by key (not hand-written).

    ``runtime``/``paper_runtime``: the resolved precision and compile of this sweep's device
    and of the paper's (CUDA), since "auto" resolves differently on a CPU.
    """
    ours, ref = flatten(cfg), flatten(paper)
    out = []
    for key in ref:
        if key in NOT_DEVIATIONS or key == axis_key or ours.get(key) == ref[key]:
            continue
        if key == "data.num_classes" and ours.get("data.dataset") != "synthetic":
            continue  # the synthetic task's knob: other data have their files' classes
        if key in SYNTHETIC_ONLY:  # no paper value: the paper's data has no such knob
            if ours.get("data.dataset") == "synthetic":
                out.append(f"{key}: {ours.get(key)} (synthetic data only)")
            continue
        a, b = ours.get(key), ref[key]
        if key == "model.size":
            a, b = _size_text(a), _size_text(b)
        out.append(f"{key}: {a} (paper: {b})")
    for key, ref_value in paper_runtime.items():
        if runtime.get(key) != ref_value:
            out.append(f"{key}: {runtime.get(key)} on {runtime.get('device')} (paper: {ref_value})")
    return out
