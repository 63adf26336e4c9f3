"""The grid of ``vil-ablate calibrate``: three arms of one experiment's reference variant,
trained as a sweep (resumable, recorded, one study) in ``<results>/<protocol>/calibration/``.

- ``reference``: the experiment's reference variant as its sweep trains it;
- ``aa``: the same, with ``model.init_seed = seed + AA_OFFSET`` (``Variant.seeded``): other
  initial weights, the same data draws (order, augmentation, mixing) as ``reference`` of
  that seed. Nothing differs by design, so its comparison with ``reference`` is an A/A test;
- ``planted``: the reference made worse in a known way (``--planted``, default
  ``data.label_noise=0.2``: a fifth of the training labels wrong), the planted effect.

The grid is trained seed by seed (all arms of seed 0, then of seed 1, ...), so a calibration
stopped early still pairs every seed it finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ablations.schema import points as grid
from ablations.schema.catalog import Catalog, Experiment, Variant
from ablations.schema.config import dotted, flatten
from ablations.sweep.spec import Sweep, SweepOptions, resolve

CALIBRATION = "calibration"  # the experiment (and folder) name
REFERENCE, AA, PLANTED = "reference", "aa", "planted"
ARMS = (REFERENCE, AA, PLANTED)
AA_OFFSET = 1_000_003  # init_seed of the A/A arm = seed + this: never another run's seed
DEFAULT_PLANTED = {"data.label_noise": 0.2}
DEFAULT_SEEDS = list(range(20))


def arms(base: Experiment, planted: Mapping[str, Any]) -> Experiment:
    """The calibration experiment of ``base``'s reference variant (``planted``: flat keys)."""
    ref = base.variant(base.reference)
    flat = flatten(ref.overrides)
    variants = (
        Variant(REFERENCE, ref.overrides),
        Variant(AA, ref.overrides, {"model.init_seed": AA_OFFSET}),
        Variant(PLANTED, dotted({**flat, **planted})),
    )
    text = (f"A/A and planted-effect control of {base.name}'s reference {base.reference}: "
            f"aa = init_seed seed+{AA_OFFSET}; planted = "
            + ", ".join(f"{k}={v}" for k, v in planted.items()))  # fmt: skip
    return replace(base, name=CALIBRATION, axis="model.init_seed", reference=REFERENCE,
                   variants=variants, description=text, match=None)  # fmt: skip


def resolve_calibration(
    opts: SweepOptions, base: str, planted: Mapping[str, Any], check_data: bool = True
) -> Sweep:
    """The calibration sweep (``opts.experiment`` is set to CALIBRATION), seed-major."""
    opts = replace(opts, experiment=CALIBRATION, seeds=opts.seeds or DEFAULT_SEEDS)

    def derive(catalog: Catalog) -> Experiment:
        return arms(catalog.experiment(base), planted)

    s = resolve(opts, check_data, derive=derive)
    order = [grid.Point(v, seed) for seed in opts.seeds for v in ARMS]
    s.grid = [p for p in order if p in s.configs]
    s.configs = {p: s.configs[p] for p in s.grid}
    s.sciences = {p: s.sciences[p] for p in s.grid}
    return s
