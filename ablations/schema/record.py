"""The run record: one grid point's run, declared once.

``RunRecord``'s fields are ``result.json``'s keys; its scalar fields are ``runs.csv``'s
columns (in this order). The trial writes the record (``ablations.train.train``); status,
runs.csv and the report read it back with ``read_all``. Optuna keeps only what scheduling
needs (variant, seed, fingerprint, state). Nothing else declares these names.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ablations.schema.files import atomic_write, read_json, write_json

NESTED = {"nested": True}  # result.json only: too large or structured for a CSV cell
RESULT_FILE = "result.json"
LIVE_STATES = ("RUNNING", "WAITING")  # scheduling states, from the study
STATES = (
    "COMPLETE", "TRUNCATED", "PRUNED", "FAIL", "INTERRUPTED", "RUNNING", "WAITING", "MISSING"
)  # fmt: skip
# PRUNED: a tune trial stopped early by the pruner (ablations/tune/), never a grid point
# TRUNCATED: stopped by train.time_limit_s / train.max_steps before its last epoch's last step:
# never a result (the report leaves it out unless --include-truncated); the next sweep resumes
# it from its checkpoint


@dataclass
class RunRecord:
    """Everything one run did, and the setting it did it in (as resolved for that run)."""

    # Identity: which grid point, under which protocol, with which science config.
    experiment: str = ""
    protocol: str = ""
    variant: str = ""  # the experiment's row name
    seed: int = 0
    axis: str = ""  # the config key the experiment varies, e.g. model.traversal
    axis_value: str = ""  # this run's value of it
    traversal: str = ""
    pooling: str = ""
    fingerprint: str = ""  # hash of the science part of the resolved config (config.py)
    state: str = "MISSING"  # RUNNING | COMPLETE | TRUNCATED | FAIL | INTERRUPTED | PRUNED ...
    fail_reason: str | None = None
    # What it measured.
    params: int | None = None
    flops: float | None = None  # forward FLOPs of one image (2 per multiply-add)
    top1: float | None = None
    top5: float | None = None
    val_loss: float | None = None
    train_time_s: float | None = None
    train_step_time_s: float | None = None  # of train_time_s, the time in train steps
    img_per_s: float | None = None
    peak_mem_mb: float | None = None
    epochs_done: int = 0
    steps_done: int = 0
    # The setting, as this run resolved it (the report states these, never the command's).
    dataset: str | None = None
    data_root: str | None = None
    class_list: str | None = None
    num_classes: int | None = None
    train_images: int | None = None
    val_images: int | None = None
    num_skipped: int | None = None
    chance_top1: float | None = None  # percent
    img_size: int | None = None
    model_size: str | None = None
    dim: int | None = None
    depth: int | None = None
    patch_size: int | None = None
    init: str | None = None
    release: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    base_lr: float | None = None  # the protocol's lr (at batch 1024)
    peak_lr: float | None = None  # base_lr x batch_size / 1024: what the run used
    precision: str | None = None
    compile: bool | None = None
    device: str | None = None
    world_size: int | None = None
    git_rev: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    trial: int | None = None  # Optuna trial number
    attempt: int | None = None
    resumes: int = 0  # times the run continued from its own checkpoint (Ctrl-C, preemption)
    run_dir: str = ""  # relative to the experiment folder
    # What a pairing relies on (ablations/train/digests.py): the initial weights and the first
    # epoch's data draws (sample order, augmentation and step seeds). None: not recorded.
    init_digest: str | None = None
    data_digest: str | None = None
    # Tuning (ablations/tune/) and matching (ablations/sweep/matching.py).
    tune_trials: int | None = None  # finished trials of the variant's tune study (sweep --tuned)
    tune_pruned: int | None = None  # how many of them the pruner stopped early
    tune_best_top1: float | None = None  # tuning-split top-1 of the best trial (not val)
    match: str | None = None  # "params" | "flops": depth solved to match the reference
    match_target: float | None = None  # the reference's figure the depth was solved for
    match_value: int | None = None  # the solved depth (or width, match: key)
    # result.json only.
    config: dict = field(default_factory=dict, metadata=NESTED)  # the resolved RunConfig
    science: dict = field(default_factory=dict, metadata=NESTED)  # what the fingerprint hashes
    data: dict = field(default_factory=dict, metadata=NESTED)  # provenance (class names...)
    deviations: list = field(default_factory=list, metadata=NESTED)  # vs the paper's protocol
    versions: dict = field(default_factory=dict, metadata=NESTED)
    resumed_from: dict = field(default_factory=dict, metadata=NESTED)
    tuned: dict = field(default_factory=dict, metadata=NESTED)  # key -> value the tune chose
    tune_ranges: dict = field(default_factory=dict, metadata=NESTED)  # key -> [low, high, log]
    imports: list = field(default_factory=list, metadata=NESTED)  # --import / imports: (files'
    # sha256 and the names each registered; schema/imports.py)
    # Config keys the variant sets itself (its row's definition, match: solved keys); they
    # differ between rows by design. None: not recorded (older records).
    own_keys: list | None = field(default=None, metadata=NESTED)
    # Own non-model keys the experiment declares as intended confounds (key -> reason,
    # experiments.yaml ``confounds:``); the report names them beside the interval.
    confounds: dict = field(default_factory=dict, metadata=NESTED)
    # Which validation images the last evaluation got right (top-1), in the val set's order:
    # ``encode_correct``. The report's evaluation-noise floor (discordant counts) reads it.
    val_correct: dict = field(default_factory=dict, metadata=NESTED)
    # The machine's load while the run trained: ``loadavg_1m_start`` / ``_end``, the mean of
    # every sample (start, each epoch, end) ``loadavg_1m_mean`` over ``loadavg_1m_samples``,
    # ``cpus``, torch ``threads``, ``concurrent_trials`` (``_end``): other RUNNING records in
    # the folder at start (end). Throughput and train time are comparable only between runs
    # under similar load (ablations/report/machine_load.py).
    load: dict = field(default_factory=dict, metadata=NESTED)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        """A record from result.json (unknown keys of older versions are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def update(self, values: dict[str, Any]) -> None:
        """Set the fields named in ``values`` (other keys are not part of the record)."""
        for f in dataclasses.fields(self):
            if f.name in values:
                setattr(self, f.name, values[f.name])

    def write(self, run_dir: Path) -> None:

        write_json(Path(run_dir) / RESULT_FILE, self.to_dict())

    @property
    def point(self) -> tuple[str, int]:
        return self.variant, int(self.seed)


def _scalar_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(RunRecord) if not f.metadata.get("nested")]


CSV_COLUMNS: tuple[str, ...] = tuple(f.name for f in _scalar_fields())


def _is_numeric(tp: Any) -> bool:
    args = typing.get_args(tp) or (tp,)
    return any(a in (int, float) for a in args)


_HINTS = typing.get_type_hints(RunRecord)
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in CSV_COLUMNS if _is_numeric(_HINTS[c]))


def read(run_dir: Path) -> RunRecord | None:
    """The record in ``run_dir`` (None when there is none or it cannot be read)."""

    d = read_json(Path(run_dir) / RESULT_FILE)
    return RunRecord.from_dict(d) if isinstance(d, dict) else None


def read_all(exp_dir: Path, pattern: str = "runs/*") -> list[RunRecord]:
    """Every record under ``exp_dir/runs/`` (or ``pattern``: ``tune/*/*`` for tune trials),
    whatever the current command asked for."""
    out = []
    for path in sorted(Path(exp_dir).glob(f"{pattern}/{RESULT_FILE}")):
        rec = read(path.parent)
        if rec is not None:
            rec.run_dir = path.parent.relative_to(exp_dir).as_posix()
            out.append(rec)
    return out


def write_runs_csv(path: Path, records: list[RunRecord]) -> None:
    """runs.csv: one row per record, the scalar fields as columns."""

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for rec in records:
        row = rec.to_dict()
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in CSV_COLUMNS})
    atomic_write(path, buf.getvalue())


def encode_correct(correct: Any) -> dict[str, Any]:
    """Per-image correctness (booleans) as ``{"n": N, "bits": base64 of np.packbits}``."""
    arr = np.asarray(correct, dtype=bool).ravel()
    return {"n": int(arr.size), "bits": base64.b64encode(np.packbits(arr).tobytes()).decode()}


def decode_correct(value: Any) -> np.ndarray | None:
    """The booleans of ``encode_correct`` (None when not recorded or malformed)."""
    if not isinstance(value, dict) or "n" not in value or "bits" not in value:
        return None
    try:
        raw = np.frombuffer(base64.b64decode(value["bits"]), dtype=np.uint8)
        bits = np.unpackbits(raw)[: int(value["n"])].astype(bool)
    except (ValueError, TypeError):
        return None
    return bits if bits.size == int(value["n"]) else None


# Keys that left the science part (config.BUDGET), hashed at the value every run without
# them had: those runs keep their fingerprints; a run with a budget gets the unbudgeted one.
RETIRED_SCIENCE = {"train.max_steps": None, "train.time_limit_s": None}


def fingerprint(science: dict[str, Any]) -> str:
    """A short, stable hash of a config's science part (``config.science``)."""
    science = {**science, **RETIRED_SCIENCE}
    text = json.dumps(science, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
