"""A resolved sweep: options -> every grid point's config and fingerprint, the experiment
folder, and the check that finished runs still match the config asked for.

Folder: ``<results>/<protocol>/<experiment>/``: runs of different protocols never share a
folder, a study or a report. ``experiment.json`` holds the experiment's identity and every
grid point any command asked for (a union): the report covers all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablations.schema import points as grid
from ablations.schema import record as runs
from ablations.schema.catalog import Catalog, Experiment, load_catalog
from ablations.schema.config import (
    RECIPE_KEY,
    ConfigError,
    RunConfig,
    changes,
    flatten,
    science,
    to_dict,
    validate,
)
from ablations.schema.device import device_type, resolve_compile
from ablations.schema.files import naming_path, read_json, write_json
from ablations.schema.layers import Layer, stack
from ablations.study.storage import JOURNAL_FILE, masked
from ablations.study.sweep_study import Place
from ablations.sweep.matching import solve_all
from ablations.train.runtime import git_revision, versions


class SweepError(RuntimeError):
    """A sweep-level problem (changed config, storage, folder); str() is one line or more."""


@dataclass
class SweepOptions:
    """What the CLI passes to a sweep."""

    experiment: str
    protocol: str | None = None  # None: the file's default_protocol
    results: Path = Path("results")
    storage: str | None = None  # None: the experiment folder's journal file; or an RDB URL
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
    tuned: bool = False  # sweep --tuned: the app resolves with each variant's best tune values


@dataclass
class Sweep:
    """A resolved, validated sweep: one config and fingerprint per grid point."""

    opts: SweepOptions
    catalog: Catalog
    exp: Experiment
    protocol: str
    grid: list[grid.Point]
    exp_dir: Path
    configs: dict[grid.Point, RunConfig]
    sciences: dict[grid.Point, dict[str, Any]]
    matched: dict[str, Any] = field(default_factory=dict)  # variant -> matching.Solved
    tuned: dict[str, Any] = field(default_factory=dict)  # variant -> study.tune.Best

    @property
    def study_name(self) -> str:
        return f"{self.exp.name}@{self.protocol}"

    @property
    def place(self) -> Place:
        """Where the sweep's study lives."""
        o = self.opts
        return Place(self.study_name, o.storage, self.exp_dir, o.heartbeat_s, o.grace_s)

    @property
    def fingerprints(self) -> dict[grid.Point, str]:
        return {p: runs.fingerprint(s) for p, s in self.sciences.items()}

    def config_for(self, p: grid.Point) -> RunConfig:
        return self.configs[p]

    def variant_config(
        self, variant: str, seed: int, tuned: dict | None = None, final: tuple | None = None
    ) -> RunConfig:
        """A variant's config through the one layering (``tuned``: nested overrides;
        ``final``: (source, overrides) of a purpose's own last layer)."""
        layers = self.variant_layers(variant, seed, tuned, final)
        return stack(self.catalog.protocol(self.protocol), layers)

    def variant_layers(
        self, variant: str, seed: int, tuned: dict | None = None, final: tuple | None = None
    ) -> list[Layer]:
        """The layers above the protocol of ``variant_config`` (``vil-ablate show``)."""
        m = self.matched.get(variant)
        return self.exp.layers(variant, seed, self.opts.overrides, self.opts.device,
                               m.overrides if m else None, tuned, final)  # fmt: skip

    def record_for(self, p: grid.Point) -> runs.RunRecord:
        """The identity part of a point's record (the trial fills in the rest)."""
        cfg = self.configs.get(p) or self.variant_config(p.variant, p.seed)
        rec = runs.RunRecord(
            experiment=self.exp.name, protocol=self.protocol, variant=p.variant, seed=p.seed,
            axis=self.exp.axis, axis_value=str(_get(cfg, self.exp.axis_key)),
            traversal=cfg.model.traversal, pooling=cfg.model.pooling_name, run_dir=p.run_dir,
            deviations=point_deviations(self, cfg, p.variant),
        )  # fmt: skip
        m, t = self.matched.get(p.variant), self.tuned.get(p.variant)
        own = flatten(self.exp.variant(p.variant).overrides) | flatten(m.overrides if m else {})
        rec.own_keys = sorted(own)  # the row's own settings (the report's comparability)
        rec.confounds = dict(self.exp.confounds)  # declared: the report marks, not refuses
        if m is not None:
            rec.match, rec.match_target, rec.match_value = m.by, m.target, m.value
        if t is not None:
            rec.tuned, rec.tune_trials, rec.tune_pruned = t.params, t.trials, t.pruned
            rec.tune_best_top1, rec.tune_ranges = t.top1, t.ranges
        return rec


def _get(cfg: RunConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def experiment_dir(results: Path, protocol: str, experiment: str) -> Path:
    return Path(results) / protocol / experiment


def resolve(
    opts: SweepOptions,
    check_data: bool = True,
    tuned: dict | None = None,
    derive: Callable[[Catalog], Experiment] | None = None,
) -> Sweep:
    """Load the experiments file and resolve + validate every point's config (no I/O).

    ``tuned``: variant -> its best tune values (``study.tune.Best``), as the app loaded them
    for ``sweep --tuned``. ``derive``: an experiment made from the file's (``calibrate``'s
    arms), added to the catalog under its own name before ``opts.experiment`` is looked up."""
    catalog = load_catalog(opts.experiments_file)
    if derive is not None:
        made = derive(catalog)
        catalog.experiments[made.name] = made
    exp = catalog.experiment(opts.experiment)
    protocol = opts.protocol or catalog.default_protocol
    catalog.protocol(protocol)  # an unknown protocol fails here, naming the valid ones
    seeds = list(catalog.seeds_for(exp, protocol, opts.seeds))
    names = list(opts.variants) if opts.variants else exp.variant_names
    unknown = [n for n in names if n not in exp.variant_names]
    if unknown:
        valid = ", ".join(exp.variant_names)
        raise ConfigError(f"--variants: unknown {unknown} in {exp.name}; valid: {valid}")
    points = grid.points(names, seeds)
    exp_dir = experiment_dir(opts.results, protocol, exp.name)
    s = Sweep(opts, catalog, exp, protocol, points, exp_dir, {}, {})
    if exp.match is not None:
        first = exp.seeds[0]
        s.matched = solve_all(exp, lambda v: s.variant_config(v, first), names, catalog.source)
    s.tuned = dict(tuned or {})
    for p in points:
        t = s.tuned.get(p.variant)
        cfg = s.variant_config(p.variant, p.seed, t.overrides if t else None)
        s.configs[p] = validate(cfg, f"{catalog.source}: {exp.name}/{p.name}", data=check_data)
    s.sciences = {p: science(c) for p, c in s.configs.items()}
    return s


def point_deviations(sweep: Sweep, cfg: RunConfig, variant: str | None = None) -> list[str]:
    """How a point's config differs from the paper protocol (the axis itself excluded)."""
    paper = sweep.catalog.protocols.get("paper", RunConfig())
    sci = science(cfg)
    device = device_type(cfg.train.device)
    compiled = resolve_compile(cfg.train.compile, cfg.train.device)
    runtime = {"precision": sci["train.precision"], "compile": compiled, "device": device}
    paper_runtime = {"precision": "bf16", "compile": True}  # the paper: CUDA, auto -> on
    # Keys the variant itself sets (uni's `pooling: last`) define the row, as in the paper's
    # own configs: they are not deviations of the experiment's setting.
    own = set(flatten(sweep.exp.variant(variant).overrides)) if variant else set()
    devs = grid.deviations(to_dict(cfg), to_dict(paper), sweep.exp.axis_key, runtime,
                           paper_runtime)  # fmt: skip
    return [d for d in devs if d.split(":", 1)[0] not in own]


def stale_points(sweep: Sweep) -> list[str]:
    """One line per point whose existing run was made with another science config."""
    lines = []
    for p in sweep.grid:
        rec = runs.read(sweep.exp_dir / p.run_dir)
        if rec is None or rec.state not in ("COMPLETE", "INTERRUPTED", "RUNNING"):
            continue  # nothing to lose: a failed run is simply replaced
        diff = (
            stale_reasons(rec.science, sweep.sciences[p]) if rec.science else ["(no fingerprint)"]
        )
        if rec.fingerprint != runs.fingerprint(sweep.sciences[p]):
            lines.append(f"{p.name} ({rec.state.lower()}): {', '.join(diff[:6])}")
    return lines


def stale_reasons(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between a run's recorded science config and this command's: the recipe
    version first, said as such (the code, not the config, changed), then each key."""
    out = []
    if old.get(RECIPE_KEY) != new.get(RECIPE_KEY):
        was = old.get(RECIPE_KEY, "(none: older code)")
        out.append(f"recorded {RECIPE_KEY} {was}, this code {new.get(RECIPE_KEY)} (the code "
                   "now trains such a run differently)")  # fmt: skip
    return out + [c for c in changes(old, new) if not c.startswith(f"{RECIPE_KEY} ")]


def check_records(sweep: Sweep) -> None:
    """Stop before any training when a finished run's config differs (unless --rerun)."""
    if sweep.opts.rerun:
        return
    stale = stale_points(sweep)
    if stale:
        head = f"{sweep.exp_dir}: {len(stale)} run(s) were made with another config:"
        hint = "retrain them with --rerun, or use another --results folder"
        raise SweepError("\n".join([head, *(f"  {line}" for line in stale), hint]))


def prepare(sweep: Sweep) -> None:
    """Create the folder and write experiment.json (the union of all points asked for)."""
    with naming_path(sweep.exp_dir, "create"):
        (sweep.exp_dir / "runs").mkdir(parents=True, exist_ok=True)
    write_json(sweep.exp_dir / "experiment.json", experiment_info(sweep))
    declare_confounds(sweep)


def declare_confounds(sweep: Sweep) -> list[str]:
    """Give finished runs of the grid the experiment's current ``confounds:`` (a declaration
    the report reads, not science: declaring a key after the runs needs no retraining)."""
    done = []
    for p in sweep.grid:
        rec = runs.read(sweep.exp_dir / p.run_dir)
        if rec is None or rec.state not in ("COMPLETE", "TRUNCATED"):
            continue  # a running or waiting point gets it from record_for
        same = rec.fingerprint == runs.fingerprint(sweep.sciences[p])
        if same and rec.confounds != sweep.exp.confounds:
            rec.confounds = dict(sweep.exp.confounds)
            rec.write(sweep.exp_dir / p.run_dir)
            done.append(p.name)
    return done


def experiment_info(sweep: Sweep) -> dict[str, Any]:
    """experiment.json: the experiment's identity and grid; settings live in the records."""
    old = read_json(sweep.exp_dir / "experiment.json") or {}
    names = [p.name for p in sweep.grid]
    points = list(dict.fromkeys([*old.get("points", []), *names]))
    variants = [
        v
        for v in sweep.exp.variant_names
        if v in {*old.get("variants", []), *(p.variant for p in sweep.grid)}
    ]
    variants += [v for v in old.get("variants", []) if v not in variants]
    seeds = sorted({*old.get("seeds", []), *(p.seed for p in sweep.grid)})
    return {
        "experiment": sweep.exp.name, "protocol": sweep.protocol, "axis": sweep.exp.axis,
        "axis_key": sweep.exp.axis_key, "reference": sweep.exp.reference,
        "variants": variants, "seeds": seeds, "points": points,
        "description": sweep.exp.description,
        "protocol_description": sweep.catalog.descriptions.get(sweep.protocol, ""),
        "study": sweep.study_name, "storage": masked(sweep.opts.storage) or JOURNAL_FILE,
        "versions": versions(), "git_rev": git_revision(),
    }  # fmt: skip
