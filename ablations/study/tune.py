"""Tune studies: one Optuna study per variant, ``<experiment>@<protocol>/tune/<variant>``, in
the sweep's storage (the experiment folder's journal, or the --storage URL).

Exactly N trials per variant with any number of workers: ``study.optimize(n_trials=N)``
counts per process, so a worker asks for a new trial only under the grid lock and only while
the study holds fewer than N trials that count (finished, pruned, running, waiting, or failed
with an error; a trial whose worker was lost or interrupted is replaced). The tune layer
passes plain values (names, bounds, fingerprints) and gets plain values back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from ablations.schema.config import dotted
from ablations.study import storage
from ablations.study.queue import fail_kind
from ablations.study.sweep_study import Place, Study, Trial

log = logging.getLogger("vil-ablate.tune")
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


def study_name(sweep_study: str, variant: str) -> str:
    """``table2@demo`` + ``bi`` -> ``table2@demo/tune/bi``."""
    return f"{sweep_study}/tune/{variant}"


def counted(study: Study) -> int:
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


def open_tune_study(
    place: Place, variant: str, pruner: str, budget_epochs: int, seed: int
) -> tuple[Study, storage.GridLock]:
    """The variant's tune study (created on first use) and its lock."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name(place.name, variant)
    study = optuna.create_study(
        study_name=name, storage=storage.open_storage(place.storage, place.exp_dir),
        direction="maximize", load_if_exists=True, pruner=make_pruner(pruner, budget_epochs),
        sampler=optuna.samplers.TPESampler(seed=seed),
    )  # fmt: skip
    return study, storage.GridLock(place.storage, place.exp_dir, name)


def stamp(study: Study, setting: dict[str, Any]) -> None:
    """A study holds the trials of one tune setting: stamp it once, refuse another one.

    ``setting``: plain values that decide the trials (the config's fingerprint, the search
    space, the pruner, the sampler seed); a change names the keys that differ."""
    old = study.user_attrs.get("setting")
    if old is None:
        study.set_user_attr("setting", setting)
        return
    diff = sorted(k for k in set(old) | set(setting) if old.get(k) != setting.get(k))
    if diff:
        what = ", ".join(f"{k} {old.get(k)} -> {setting.get(k)}" for k in diff)
        raise TuneError(f"{study.study_name}: its trials were made with another setting "
                        f"({what}); use another --results folder or --storage")  # fmt: skip


def enqueue_start(study: Study, lock: storage.GridLock, points: list[dict[str, float]]) -> None:
    """The tune block's start points, once per study (before any other trial)."""
    with lock.hold():
        if study.get_trials(deepcopy=False):
            return
        for point in points:
            study.enqueue_trial(point)


def next_trial(study: Study, lock: storage.GridLock, budget: int, grace_s: float) -> Trial | None:
    """Fail stale trials; then a WAITING trial (a start point), else a new one while the
    budget allows, else None."""
    for number in storage.fail_stale_trials(study, grace_s):
        log.warning("tune trial %d lost its worker; it will be replaced", number)
    with lock.hold():
        if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return study.ask()
        return study.ask() if counted(study) < budget else None


def propose(
    study: Study, trial: Trial, seed: int, bounds: dict[str, tuple[float, float, bool]]
) -> dict[str, float]:
    """The trial's values within ``bounds`` (key -> (low, high, log)), drawn by a sampler
    seeded by (tune seed, trial number): reproducible, and two workers never draw the same
    random start-up point."""
    # Hashed, not seed + number: the first draws of consecutive Mersenne-Twister seeds are
    # close (seeds 1, 2, 3 -> 0.42, 0.44, 0.55), which clustered the start-up proposals.
    mixed = int(np.random.SeedSequence([seed, trial.number]).generate_state(1)[0])
    study.sampler = optuna.samplers.TPESampler(seed=mixed)
    return {k: trial.suggest_float(k, lo, hi, log=lg) for k, (lo, hi, lg) in bounds.items()}


def report(trial: Trial, value: float, epoch: int) -> bool:
    """Report an epoch's tuning top-1; whether the pruner stops the trial."""
    trial.report(value, epoch)
    return trial.should_prune()


def set_attr(trial: Trial, key: str, value: Any) -> None:
    trial.set_user_attr(key, value)


def tell(study: Study, trial: Trial, outcome: str, value: float | None) -> None:
    """complete (with value), pruned, or FAIL with kind ``error`` (counts) or the outcome."""
    try:
        if outcome == "complete":
            study.tell(trial, value)
        elif outcome == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        else:  # a failed (diverged) trial counts, an interrupted one is replaced
            trial.set_user_attr("fail_kind", "error" if outcome == "fail" else outcome)
            study.tell(trial, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was already finished by another worker (stale?)", trial.number)


def any_running(studies: list[Study]) -> bool:
    return any(st.get_trials(False, states=(TrialState.RUNNING,)) for st in studies)


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


def existing(place: Place, variant: str) -> Study | None:
    """The variant's tune study if it exists (never creates one, nor the journal file)."""
    if not storage.journal_exists(place.storage, place.exp_dir):
        return None
    st = storage.open_storage(place.storage, place.exp_dir)
    try:
        return optuna.load_study(study_name=study_name(place.name, variant), storage=st)
    except KeyError:
        return None


def summary_lines(place: Place, variants: list[str]) -> list[str]:
    """One line per variant with a tune study: trials, pruned, best tuning top-1 and values."""
    lines = []
    for v in variants:
        study = existing(place, v)
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


def load_best(place: Place, settings: dict[str, dict[str, Any]], exp: str) -> dict[str, Best]:
    """Each variant's best tune parameters, from a study stamped with ``settings[variant]``;
    one line naming the first variant without any, or tuned with another setting."""
    out = {}
    for v, setting in settings.items():
        study = existing(place, v)
        old = study.user_attrs.get("setting") if study else None
        if old is not None and old != setting:
            diff = ", ".join(k for k in sorted(set(old) | set(setting))
                             if old.get(k) != setting.get(k))  # fmt: skip
            raise TuneError(f"--tuned: {study_name(place.name, v)} was tuned with another "
                            f"setting ({diff} changed: protocol, --set, budget, space, pruner "
                            "or seed); tune again")  # fmt: skip
        best = summarise(study.get_trials() if study else [])
        if best is None:
            where = storage.masked(place.storage) or place.exp_dir / storage.JOURNAL_FILE
            raise TuneError(
                f"--tuned: variant {v} has no finished tune study "
                f"{study_name(place.name, v)!r} in {where}; run `vil-ablate tune {exp} "
                "--budget N` first"
            )
        out[v] = best
    return out
