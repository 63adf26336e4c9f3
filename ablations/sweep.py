"""Sweeps: an experiment (variant x seed grid) as one Optuna study, run by any number of workers.

Flow: resolve + validate every trial config -> experiment.json -> enqueue the grid once
(under the grid lock) -> workers claim WAITING trials, train them in ``runs/<variant>-s<seed>``
and tell the study -> runs.csv -> report. Each grid point is trained once: a COMPLETE trial
marks it done; interrupted or lost trials are re-enqueued and resume from their checkpoint.
Under ``torchrun`` rank 0 talks to Optuna and broadcasts the trial; all ranks train it (DDP).
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch.distributed as dist
from optuna.trial import TrialState

from ablations import grid, storage
from ablations.config import ConfigError, RunConfig, apply, to_dict, validate
from ablations.experiments import Catalog, Experiment, load_catalog
from ablations.train import Interrupted, train
from ablations.train.records import naming_path, read_json, write_json
from ablations.train.runtime import device_name, git_revision, resolve_runtime, versions

log = logging.getLogger("vil-ablate.sweep")
RESULT_KEYS = (
    "traversal", "pooling", "params", "flops", "top1", "top5", "val_loss", "train_time_s",
    "img_per_s", "peak_mem_mb", "epochs_done",
)  # fmt: skip


class SweepError(RuntimeError):
    """A sweep-level problem (wrong results folder, ...); str() is one line."""


@dataclass
class SweepOptions:
    """What the CLI passes to a sweep."""

    experiment: str
    protocol: str | None = None  # None: the file's default_protocol
    results: Path = Path("results")
    storage: str | None = None  # None: <results>/<exp>/optuna.journal; or an RDB URL
    seeds: list[int] | None = None  # None: the experiment's seeds
    variants: list[str] | None = None  # None: all of the experiment's variants
    device: str | None = None
    rerun: bool = False  # retrain finished points
    retry_failed: bool = False  # retrain points that failed with an error
    overrides: dict[str, Any] = field(default_factory=dict)  # from --set
    experiments_file: str | None = None
    heartbeat_s: int = 10
    grace_s: int = 60
    max_retries: int = 3  # automatic retries of a point whose worker was lost
    poll_s: float = 5.0  # idle workers re-check RUNNING trials this often
    report: bool = True


@dataclass
class Sweep:
    """A resolved, validated sweep."""

    opts: SweepOptions
    catalog: Catalog
    exp: Experiment
    protocol: str
    base: RunConfig  # protocol + --set + --device
    grid: list[grid.Point]
    exp_dir: Path

    @property
    def study_name(self) -> str:
        return f"{self.exp.name}@{self.protocol}"

    def config_for(self, p: grid.Point) -> RunConfig:
        cfg = self.exp.config_for(
            self.catalog.protocol(self.protocol), p.variant, p.seed, self.opts.overrides
        )
        return self._device(cfg)

    def _device(self, cfg: RunConfig) -> RunConfig:
        if self.opts.device:
            return apply(cfg, {"train": {"device": self.opts.device}}, "--device")
        return cfg


def resolve(opts: SweepOptions, check_data: bool = True) -> Sweep:
    """Load the experiments file and check every trial's config before any training."""
    catalog = load_catalog(opts.experiments_file)
    exp = catalog.experiment(opts.experiment)
    protocol = opts.protocol or catalog.default_protocol
    base = apply(catalog.protocol(protocol), opts.overrides, "--set")
    if opts.device:
        base = apply(base, {"train": {"device": opts.device}}, "--device")
    seeds = list(opts.seeds) if opts.seeds else list(exp.seeds)
    names = list(opts.variants) if opts.variants else exp.variant_names
    unknown = [n for n in names if n not in exp.variant_names]
    if unknown:
        valid = ", ".join(exp.variant_names)
        raise ConfigError(f"--variants: unknown {unknown} in {exp.name}; valid: {valid}")
    sweep = Sweep(opts, catalog, exp, protocol, base, grid.points(names, seeds),
                  Path(opts.results) / exp.name)  # fmt: skip
    for p in sweep.grid:
        validate(sweep.config_for(p), f"{catalog.source}: {exp.name}/{p.name}", data=check_data)
    return sweep


def check_folder(sweep: Sweep) -> None:
    """One experiment folder holds one protocol."""
    info = read_json(sweep.exp_dir / "experiment.json")
    if info and info.get("protocol") not in (None, sweep.protocol):
        raise SweepError(
            f"{sweep.exp_dir} holds runs of protocol {info['protocol']!r}, not {sweep.protocol!r}; "
            f"use --results results/{sweep.protocol}"
        )


def experiment_info(sweep: Sweep) -> dict[str, Any]:
    """The content of experiment.json (the report reads it)."""
    rt = resolve_runtime(sweep.base.train)
    paper = sweep.catalog.protocols.get("paper", RunConfig())
    runtime = {"precision": rt.precision, "compile": rt.compile, "device": rt.device.type}
    paper_runtime = {"precision": "bf16", "compile": True}  # the paper: CUDA, auto -> on
    return {
        "experiment": sweep.exp.name, "protocol": sweep.protocol, "axis": sweep.exp.axis,
        "reference": sweep.exp.reference, "variants": sweep.exp.variant_names,
        "seeds": sorted({p.seed for p in sweep.grid}), "description": sweep.exp.description,
        "protocol_description": sweep.catalog.descriptions.get(sweep.protocol, ""),
        "protocol_config": to_dict(sweep.base), "overrides": sweep.opts.overrides,
        "deviations": grid.deviations(to_dict(sweep.base), to_dict(paper), sweep.exp.axis,
                                      runtime, paper_runtime),
        "device": device_name(rt.device), "precision": rt.precision, "compile": rt.compile,
        "study": sweep.study_name, "storage": _storage_text(sweep.opts.storage),
        "versions": versions(), "git_rev": git_revision(),
    }  # fmt: skip


def _storage_text(url: str | None) -> str:
    if not storage.is_url(url):
        return url or "optuna.journal"
    head, _, tail = str(url).partition("://")
    return f"{head}://{tail.rpartition('@')[2]}"  # no password in results


def prepare(sweep: Sweep) -> None:
    """Check the folder, create it, write experiment.json."""
    check_folder(sweep)
    with naming_path(sweep.exp_dir, "create"):
        (sweep.exp_dir / "runs").mkdir(parents=True, exist_ok=True)
    write_json(sweep.exp_dir / "experiment.json", experiment_info(sweep))


def open_study(sweep: Sweep) -> tuple[optuna.Study, storage.GridLock]:
    """The experiment's study (created on first use) and its grid lock."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = storage.open_storage(sweep.opts.storage, sweep.exp_dir, sweep.opts.heartbeat_s,
                              sweep.opts.grace_s, _on_stale)  # fmt: skip
    study = optuna.create_study(
        study_name=sweep.study_name, storage=st, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(seed=0),  # never consulted: every point is fixed
    )  # fmt: skip
    return study, storage.GridLock(sweep.opts.storage, sweep.exp_dir, sweep.study_name)


def _on_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    log.warning("trial %d (%s) lost its worker; it will be retried", trial.number,
                trial.user_attrs.get("run_dir"))  # fmt: skip


def enqueue(sweep: Sweep, study: optuna.Study, lock: storage.GridLock, initial: bool) -> list:
    """Enqueue what the grid needs, under the lock (skipped when nothing is needed)."""
    o = sweep.opts
    if not initial and not grid.needs_enqueue(study, sweep.grid, o.max_retries):
        return []
    with lock.hold():
        added = grid.reconcile(
            study, sweep.grid, initial=initial, rerun=initial and o.rerun,
            retry_failed=initial and o.retry_failed, max_retries=o.max_retries,
        )  # fmt: skip
    for p, why in added:
        log.info("enqueued %s (%s)", p.name, why)
    return added


def grid_counts(sweep: Sweep, study: optuna.Study) -> dict[str, int]:
    """Number of grid points per state (COMPLETE, RUNNING, WAITING, FAIL, MISSING)."""
    trials = grid.by_point(study)
    counts: dict[str, int] = {}
    for p in sweep.grid:
        state, _ = grid.point_state(trials.get(p, []))
        counts[state] = counts.get(state, 0) + 1
    return counts


def write_runs(sweep: Sweep, study: optuna.Study | None) -> Path:
    """runs.csv of the experiment, rebuilt from the study and the trial folders."""
    meta = {"experiment": sweep.exp.name, "protocol": sweep.protocol}
    rows = grid.runs_rows(sweep.exp_dir, study, sweep.grid, meta)
    for row, p in zip(rows, sweep.grid, strict=True):
        if not row.get("traversal") or not row.get("pooling"):  # not started yet
            model = sweep.config_for(p).model
            row.update(traversal=model.traversal, pooling=model.pooling)
    path = sweep.exp_dir / "runs.csv"
    grid.write_runs_csv(path, rows)
    return path


def _work_left(sweep: Sweep, study: optuna.Study) -> bool:
    grid_set = set(sweep.grid)
    live = (TrialState.WAITING, TrialState.RUNNING)
    return any(grid.point_of(t) in grid_set for t in study.get_trials(False, states=live))


def run_worker(sweep: Sweep, stop: threading.Event, progress: Any, initial: bool = True) -> str:
    """Claim and train trials until none is WAITING or RUNNING; 'done' or 'interrupted'.

    Idle workers keep polling while other workers' trials run: if one of those workers dies,
    its trial goes stale and is retried here.
    """
    if _rank() != 0:
        return _follow(sweep, stop, progress)
    study, lock = open_study(sweep)
    try:
        enqueue(sweep, study, lock, initial=initial)
        while not stop.is_set():
            storage.fail_stale_trials(study, sweep.exp_dir, sweep.opts.grace_s)
            enqueue(sweep, study, lock, initial=False)
            _show_counts(sweep, study, progress)
            trial = storage.claim_waiting(study)
            if trial is None:
                if not _work_left(sweep, study):
                    break
                stop.wait(sweep.opts.poll_s)
                continue
            if run_trial(sweep, study, trial, stop, progress) == "interrupted":
                break
        write_runs(sweep, study)
        _show_counts(sweep, study, progress)
        return "interrupted" if stop.is_set() else "done"
    finally:
        _broadcast(None)  # DDP followers wait for this to leave
        lock.close()


def _show_counts(sweep: Sweep, study: optuna.Study, progress: Any) -> None:
    if progress is not None:
        c = grid_counts(sweep, study)
        progress.set_done(c.get("COMPLETE", 0) + c.get("FAIL", 0), len(sweep.grid))


def run_trial(sweep: Sweep, study: optuna.Study, trial: optuna.Trial, stop: threading.Event,
              progress: Any) -> str:  # fmt: skip
    """Train one claimed trial and tell the study; returns 'complete', 'fail' or 'interrupted'."""
    attrs = trial.user_attrs
    spec = {"variant": attrs["variant"], "seed": int(attrs["seed"]), "number": trial.number,
            "resume": bool(attrs.get("resume")), "attempt": attrs.get("attempt", 1)}  # fmt: skip
    _record_params(sweep, trial)
    trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
    _broadcast(spec)
    run_dir = sweep.exp_dir / grid.Point(spec["variant"], spec["seed"]).run_dir
    with storage.Heartbeat(study._storage, trial._trial_id, run_dir, sweep.opts.heartbeat_s):
        result, kind = execute(sweep, spec, stop, progress)
    return _tell(study, trial, result, kind)


def _record_params(sweep: Sweep, trial: optuna.Trial) -> None:
    """Show variant/seed as trial params too (best effort: the grid uses user attrs)."""
    try:
        trial.suggest_categorical("variant", sweep.exp.variant_names)
        trial.suggest_int("seed", 0, 2**31 - 1)
    except (ValueError, TypeError) as e:  # e.g. the variant list changed since the study began
        log.debug("params not recorded: %s", e)


def execute(
    sweep: Sweep, spec: dict, stop: threading.Event, progress: Any
) -> tuple[dict, str | None]:
    """Train one grid point on this process (every DDP rank calls it)."""
    p = grid.Point(spec["variant"], spec["seed"])
    run_dir = sweep.exp_dir / p.run_dir
    if not spec["resume"] and _rank() == 0:
        (run_dir / "checkpoint.pt").unlink(missing_ok=True)  # a fresh attempt starts over
    if dist.is_initialized():
        dist.barrier()
    meta = {"experiment": sweep.exp.name, "protocol": sweep.protocol, "variant": p.variant,
            "trial": spec["number"], "attempt": spec["attempt"]}  # fmt: skip
    try:
        return train(sweep.config_for(p), run_dir, progress, should_stop=stop.is_set,
                     meta=meta), None  # fmt: skip
    except (Interrupted, KeyboardInterrupt):
        stop.set()
        return _failed_result(run_dir, "interrupted"), "interrupted"
    except Exception as e:  # the trial fails, the sweep goes on
        log.error("%s failed: %s: %s", p.name, type(e).__name__, e)
        return _failed_result(run_dir, f"{type(e).__name__}: {e}"), "error"


def _failed_result(run_dir: Path, reason: str) -> dict:
    result = read_json(run_dir / "result.json") or {}
    return {**result, "fail_reason": result.get("fail_reason") or reason}


def _tell(study: optuna.Study, trial: optuna.Trial, result: dict, kind: str | None) -> str:
    try:
        for k in RESULT_KEYS:
            if result.get(k) is not None:
                trial.set_user_attr(k, result[k])
        if kind is None:
            study.tell(trial, float(result["top1"]))
            return "complete"
        trial.set_user_attr("fail_kind", kind)
        trial.set_user_attr("fail_reason", result.get("fail_reason") or kind)
        study.tell(trial, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was already finished by another worker (stale?)", trial.number)
    return "interrupted" if kind == "interrupted" else ("complete" if kind is None else "fail")


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _broadcast(spec: dict | None) -> dict | None:
    """Rank 0 sends the next trial (None = stop) to the other DDP ranks."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return spec
    box = [spec]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _follow(sweep: Sweep, stop: threading.Event, progress: Any) -> str:
    """DDP ranks > 0: train whatever rank 0 broadcasts, until it sends None (always, at exit)."""
    outcome = "done"
    while True:
        spec = _broadcast(None)
        if spec is None:
            return outcome
        _, kind = execute(sweep, copy.deepcopy(spec), stop, None)
        outcome = "interrupted" if kind == "interrupted" else outcome


def load_study(sweep: Sweep) -> optuna.Study | None:
    """The existing study, or None when the experiment has not been swept."""
    if not sweep.opts.storage and not (sweep.exp_dir / "optuna.journal").exists():
        return None
    try:
        st = storage.open_storage(sweep.opts.storage, sweep.exp_dir)
        return optuna.load_study(study_name=sweep.study_name, storage=st)
    except KeyError:
        return None
