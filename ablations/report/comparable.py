"""Which runs a report may compare: those trained alike.

Two runs are comparable when their science configs (``RunRecord.science``, what the
fingerprint hashes) are equal apart from keys that differ by design:

- ``train.seed`` (statistics pair on it), ``model.init_seed`` (a seed of the init draws
  alone, set per seed by an A/A row) and the budget keys ``train.max_steps`` /
  ``train.time_limit_s`` (a run its budget stopped early is TRUNCATED, never COMPLETE);
- between runs of *different* variants also: the experiment's axis key, the keys of each
  variant's own settings that define its architecture (``model.*`` of
  ``RunRecord.own_keys``: its row's overrides and solved ``match:`` keys) and the keys that
  both runs' tune studies chose (``RunRecord.tuned``; a tuned row against an untuned one
  differs in them).

A variant's *other* own settings (``set: {train.epochs: 4}``: training, data, optimiser,
precision...) are a confound, not the design: the pair is "not comparable: bi sets
train.epochs = 4 alone". An experiment that means it declares the key (experiments.yaml
``confounds: {train.lr: reason}``, recorded as ``RunRecord.confounds``): the pair keeps its
interval, marked "confounded (declared): train.lr". Runs of different recipe versions
(``config.RECIPE_KEY``) are never paired.

Runs of one variant must agree on everything but the seed. Two variants are comparable when
every pair of their runs (within and across them) is. The tables give "not comparable"
instead of an interval for other pairs, the findings use none of them, and the page warns at
the top with each differing key and its value per run. Only the runs that enter the tables
count (COMPLETE, plus TRUNCATED with ``--include-truncated``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ablations.report.load import Experiment
from ablations.schema.config import RECIPE_KEY
from ablations.schema.imports import PREFIX as IMPORTED
from ablations.schema.record import RunRecord

# model.init_seed: a seed too (an A/A row sets it per seed, ``Variant.seeded``).
ALWAYS_EXEMPT = frozenset({"train.seed", "model.init_seed", "train.max_steps",
                           "train.time_limit_s"})  # fmt: skip
UNRECORDED = "(not recorded)"
RECORDED_KEY = "(science config)"  # some runs recorded theirs, others did not
NOT_COMPARABLE = "not comparable"
DECLARED = "confounded (declared)"
DESIGN_PREFIX = "model."  # own keys under it define the variant's architecture


@dataclass(frozen=True)
class PairCheck:
    """Why two groups of runs are not comparable (``reasons``; [] = trained alike) and the
    declared confounds they differ in (comparable, but marked)."""

    keys: list[str]
    reasons: list[str]
    declared: list[str]

    def note(self) -> str:
        """The table cell / check evidence: "not comparable: ..." or the declared mark."""
        if self.reasons:
            return f"{NOT_COMPARABLE}: {'; '.join(self.reasons)}"
        return f"{DECLARED}: {', '.join(self.declared)}" if self.declared else ""


@dataclass(frozen=True)
class Difference:
    """One science key in which compared runs differ: value text -> the runs with it."""

    key: str
    by_value: dict[str, list[str]]

    def text(self) -> str:
        """``train.weight_decay: 0.9 (uni s0, s1) vs 0.05 (alternating s0, s1)``."""
        parts = [f"{value} ({_run_list(names)})" for value, names in self.by_value.items()]
        return f"{self.key}: " + " vs ".join(parts)


def axis_key(exp: Experiment) -> str:
    return str(exp.meta.get("axis_key") or f"model.{exp.axis}")


def compared_runs(exp: Experiment, variants: Iterable[str] | None = None) -> list[RunRecord]:
    """Records of the runs the tables use (of ``variants``, default all), in sweep order."""
    rows = exp.runs[exp.runs["state"].isin(exp.result_states)]
    used = {(str(v), int(s)) for v, s in zip(rows["variant"], rows["seed"], strict=True)}
    wanted = set(exp.variants if variants is None else variants)
    recs = [r for r in exp.records if r.point in used and r.variant in wanted]
    order = {v: i for i, v in enumerate(exp.variants)}
    return sorted(recs, key=lambda r: (order.get(r.variant, len(order)), r.variant, r.seed))


def _design(rec: RunRecord) -> set[str]:
    """The record's own keys that define its architecture (``model.*``)."""
    return {k for k in rec.own_keys or [] if k.startswith(DESIGN_PREFIX)}


def declared(runs: Iterable[RunRecord]) -> dict[str, str]:
    """Confounds the experiment declared (key -> reason), as the runs recorded them."""
    out: dict[str, str] = {}
    for r in runs:
        out |= {str(k): str(v) for k, v in (r.confounds or {}).items()}
    return out


def _exempt(x: RunRecord, y: RunRecord, axis: str) -> set[str]:
    keys = set(ALWAYS_EXEMPT)
    if x.variant != y.variant:
        keys |= {axis, *_design(x), *_design(y)}
        keys |= set(x.tuned) & set(y.tuned)  # both tuned it: each row's own tune result
        # the file of a row's own part (its traversal...): part of the row's definition
        keys |= {k for k in (*x.science, *y.science) if k.startswith(IMPORTED)}
        keys |= set(declared((x, y)))  # differ on purpose: marked, not refused
    return keys


def _value(rec: RunRecord, key: str) -> Any:
    if key == RECORDED_KEY:
        return "recorded" if rec.science else "not recorded"
    return rec.science.get(key, UNRECORDED) if rec.science else UNRECORDED


def differing_keys(runs: list[RunRecord], axis: str) -> list[str]:
    """Science keys in which some two of ``runs`` differ that are not exempt for them."""
    found: set[str] = set()
    for i, x in enumerate(runs):
        for y in runs[i + 1 :]:
            if not x.science or not y.science:  # an older or hand-made record
                if bool(x.science) != bool(y.science):
                    found.add(RECORDED_KEY)
                continue
            skip = _exempt(x, y, axis)
            keys = (set(x.science) | set(y.science)) - skip - found
            found |= {k for k in keys if _value(x, k) != _value(y, k)}
    return sorted(found)


def pair_keys(exp: Experiment, a: str, b: str) -> list[str]:
    """Keys that make variants ``a`` and ``b`` not comparable ([] = trained alike)."""
    return pair_check(exp, a, b).keys


def comparable(exp: Experiment, a: str, b: str) -> bool:
    return not pair_keys(exp, a, b)


def pair_check(exp: Experiment, a: str, b: str) -> PairCheck:
    """Whether variants ``a`` and ``b`` were trained alike, with the reasons if not."""
    return check_runs(compared_runs(exp, {a, b}), axis_key(exp))


def check_runs(runs: list[RunRecord], axis: str) -> PairCheck:
    """``PairCheck`` of a group of runs (two variants of one folder, or one variant of two)."""
    keys = differing_keys(runs, axis)
    reasons = [_reason(runs, k) for k in keys]
    said = declared(runs)
    differ = {k for i, x in enumerate(runs) for y in runs[i + 1 :] for k in said
              if x.variant != y.variant and _value(x, k) != _value(y, k)}  # fmt: skip
    return PairCheck(keys, reasons, sorted(differ))


def _reason(runs: list[RunRecord], key: str) -> str:
    """``bi sets train.epochs = 4 alone``, ``recipe versions 1 vs 2`` or the plain key."""
    if key == RECIPE_KEY:
        versions = dict.fromkeys(_text(_value(r, key)) for r in runs)
        return f"runs of different recipe versions ({' vs '.join(versions)}; see the warning)"
    setters = {}
    for r in runs:
        if key in (r.own_keys or []):
            setters.setdefault(r.variant, _text(_value(r, key)))
    if setters:
        said = ", ".join(f"{v} sets {key} = {val}" for v, val in setters.items())
        alone = " alone" if len(setters) == 1 else ""
        return f"{said}{alone} (a training setting, not the design; declare it in confounds:)"
    return f"trained with different {key} (see the warning)"


def check_folders(a: list[RunRecord], b: list[RunRecord]) -> PairCheck:
    """``compare A B``: one variant's runs in folder A against its runs in folder B. Each
    side's runs must agree apart from the seed; across the folders the variant's own model.*
    keys (a solved ``match:`` depth), the keys either side was tuned on (tuned vs untuned is
    what such a comparison asks), imported parts' files and declared confounds may differ.
    Anything else, the recipe version included, makes the pair not comparable."""
    keys = set(differing_keys(a, "")) | set(differing_keys(b, ""))  # one variant per side
    for x in a:
        for y in b:
            if not x.science or not y.science:
                keys |= {RECORDED_KEY} if bool(x.science) != bool(y.science) else set()
                continue
            skip = set(ALWAYS_EXEMPT) | _design(x) | _design(y) | set(x.tuned) | set(y.tuned)
            skip |= {k for k in (*x.science, *y.science) if k.startswith(IMPORTED)}
            skip |= set(declared((x, y)))
            both = (set(x.science) | set(y.science)) - skip
            keys |= {k for k in both if _value(x, k) != _value(y, k)}
    reasons = [_folder_reason(a, b, k) for k in sorted(keys)]
    said = declared([*a, *b])
    differ = {k for x in a for y in b for k in said if _value(x, k) != _value(y, k)}
    return PairCheck(sorted(keys), reasons, sorted(differ))


def _folder_reason(a: list[RunRecord], b: list[RunRecord], key: str) -> str:
    """``train.epochs 2 in A vs 4 in B`` (each side's values, in run order)."""
    va = ", ".join(dict.fromkeys(_text(_value(r, key)) for r in a))
    vb = ", ".join(dict.fromkeys(_text(_value(r, key)) for r in b))
    if key == RECIPE_KEY:
        return f"runs of different recipe versions ({va} in A vs {vb} in B)"
    return f"{key} {va} in A vs {vb} in B"


def differences(exp: Experiment) -> list[Difference]:
    """Every key in which the compared runs differ, with each run's value."""
    runs = compared_runs(exp)
    out = []
    for key in differing_keys(runs, axis_key(exp)):
        by_value: dict[str, list[str]] = {}
        for r in runs:
            by_value.setdefault(_text(_value(r, key)), []).append(f"{r.variant}-s{r.seed}")
        out.append(Difference(key, by_value))
    return out


def warnings(exp: Experiment) -> list[str]:
    """One line per differing key, then per declared confound, for the top of the page."""
    why = (f"; comparisons across it are marked {NOT_COMPARABLE} and no claim uses them "
           f"(only the axis {axis_key(exp)}, the variants' own model.* settings, keys both "
           "were tuned on, declared confounds and the seed may differ)")  # fmt: skip
    runs = compared_runs(exp)
    out = []
    for d in differences(exp):
        own = sorted({r.variant for r in runs if d.key in (r.own_keys or [])})
        who = f" ({', '.join(own)} set{'s' if len(own) == 1 else ''} it alone)" if own else ""
        out.append(f"runs trained differently: {d.text()}{who}{why}")
    for key, reason in declared(runs).items():
        by_value: dict[str, list[str]] = {}
        for r in runs:
            by_value.setdefault(_text(_value(r, key)), []).append(f"{r.variant}-s{r.seed}")
        if len(by_value) > 1:
            text = Difference(key, by_value).text()
            out.append(f"{DECLARED}: {text}; the experiment declares it ({reason}), so "
                       "differences across it measure the axis and this key together")  # fmt: skip
    return out


def note(keys: list[str]) -> str:
    """The table cell for a pair that is not comparable (plain keys; ``PairCheck.note``
    says which variant set them)."""
    return f"{NOT_COMPARABLE}: trained with different {', '.join(keys)} (see the warning)"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _run_list(names: list[str]) -> str:
    """``uni-s0, uni-s1, bi-s0`` -> ``uni s0, s1; bi s0``."""
    by_variant: dict[str, list[str]] = {}
    for name in names:
        variant, _, seed = name.rpartition("-s")
        by_variant.setdefault(variant, []).append(f"s{seed}")
    return "; ".join(f"{v} {', '.join(seeds)}" for v, seeds in by_variant.items())
