"""Tune studies: one Optuna study per variant, ``<experiment>@<protocol>/tune/<variant>``, in
the sweep's storage (the experiment folder's journal, or the --storage URL).

Exactly N trials per variant with any number of workers: ``study.optimize(n_trials=N)``
counts per process, so a worker asks for a new trial only under the grid lock and only while
the study holds fewer than N trials that count (finished, pruned, running, waiting, or failed
with an error; a trial whose worker was lost or interrupted is replaced).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ablations.config import dotted
from ablations.sweep import storage
from ablations.sweep.queue import fail_kind

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


class TuneError(RuntimeError):
    """A tuning problem (no finished study for --tuned, changed config); one line."""


@dataclass(frozen=True)
class Best:
    """What a variant's tune study decided (enters the sweep's config and run records)."""

    params: dict[str, float]  # config key -> best value (train.lr: 0.002)
    top1: float  # tuning-split top-1 of the best trial (never the validation set)
    trials: int  # finished trials (complete + pruned)
    pruned: int  # of them, stopped by the pruner
    number: int  # the best trial's number
    ranges: dict[str, list]  # key -> [low, high, log] of the searched range

    @property
    def overrides(self) -> dict[str, Any]:
        return dotted(self.params)


def study_name(sweep: Any, variant: str) -> str:
    return f"{sweep.study_name}/tune/{variant}"


def counted(study: optuna.Study) -> int:
    """Trials that count towards the budget (see the module docstring)."""
    n = 0
    for t in study.get_trials(deepcopy=False):
        error = t.state == TrialState.FAIL and fail_kind(t) == "error"
        n += t.state in COUNTED or error
    return n


def make_pruner(name: str, budget_epochs: int) -> optuna.pruners.BasePruner:
    """The pruner on the per-epoch tuning top-1 (rungs from epoch 1)."""
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(1, max(budget_epochs, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_tune_study(sweep: Any, variant: str, pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """The variant's tune study (created on first use)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    o = sweep.opts
    st = storage.open_storage(o.storage, sweep.exp_dir, o.heartbeat_s, o.grace_s)
    return optuna.create_study(
        study_name=study_name(sweep, variant), storage=st, direction="maximize",
        load_if_exists=True, pruner=pruner,
        sampler=optuna.samplers.TPESampler(seed=sweep.exp.tune.seed),
    )  # fmt: skip


def seed_sampler(study: optuna.Study, seed: int, number: int) -> None:
    """A sampler seeded by (tune seed, trial number): reproducible proposals, and two
    workers never draw the same random start-up point."""
    import numpy as np

    # Hashed, not seed + number: the first draws of consecutive Mersenne-Twister seeds are
    # close (seeds 1, 2, 3 -> 0.42, 0.44, 0.55), which clustered the start-up proposals.
    mixed = int(np.random.SeedSequence([seed, number]).generate_state(1)[0])
    study.sampler = optuna.samplers.TPESampler(seed=mixed)


def summarise(trials: list[FrozenTrial]) -> Best | None:
    """The best COMPLETE trial and the counts, or None when no trial completed."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not done:
        return None
    best = max(done, key=lambda t: (t.value, -t.number))
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    ranges = {k: [d.low, d.high, d.log] for k, d in best.distributions.items()}
    return Best(dict(best.params), float(best.value), len(done) + pruned, pruned, best.number,
                ranges)  # fmt: skip


def existing(sweep: Any, variant: str) -> optuna.Study | None:
    """The variant's tune study if it exists (never creates one, nor the journal file)."""
    if not sweep.opts.storage and not (sweep.exp_dir / "optuna.journal").exists():
        return None
    st = storage.open_storage(sweep.opts.storage, sweep.exp_dir)
    try:
        return optuna.load_study(study_name=study_name(sweep, variant), storage=st)
    except KeyError:
        return None


def summary_lines(sweep: Any, variants: list[str]) -> list[str]:
    """One line per variant with a tune study: trials, pruned, best tuning top-1 and values."""
    lines = []
    for v in variants:
        study = existing(sweep, v)
        if study is None:
            continue
        trials = study.get_trials()
        best = summarise(trials)
        if best is None:
            lines.append(f"{study.study_name}: {len(trials)} trials, none complete")
            continue
        params = ", ".join(f"{k}={x:.3g}" for k, x in best.params.items())
        lines.append(f"{study.study_name}: {best.trials} trials ({best.pruned} pruned), "
                     f"best #{best.number} tuning top-1 {best.top1:.2f}: {params}")  # fmt: skip
    return lines


def load_best(sweep: Any, variants: list[str]) -> dict[str, Best]:
    """Each variant's best tune parameters; one line naming the first variant without any."""
    from ablations.tune.worker import Job

    out = {}
    for v in variants:
        study = existing(sweep, v)
        stamp = study.user_attrs.get("fingerprint") if study else None
        if stamp is not None and stamp != Job(sweep, 0).fingerprint(v):
            raise TuneError(f"--tuned: {study_name(sweep, v)} was tuned with another config "
                            "(protocol, --set, budget_epochs or the tune block's space, start, "
                            "pruner or seed changed); tune again")  # fmt: skip
        best = summarise(study.get_trials() if study else [])
        if best is None:
            raise TuneError(
                f"--tuned: variant {v} has no finished tune study {study_name(sweep, v)!r} in "
                f"{storage.masked(sweep.opts.storage) or sweep.exp_dir / 'optuna.journal'}; "
                f"run `vil-ablate tune {sweep.exp.name} --budget N` first"
            )
        out[v] = best
    return out
