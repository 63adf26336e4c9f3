"""The Deviations list says of every run what it ran: records made as a sweep makes them
(``Sweep.record_for``: a variant's own keys record no deviation), one variant at another
``train.epochs`` than the rest."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ablations.report.load import load_experiment
from ablations.report.page import header
from ablations.report.setting import deviations
from ablations.schema import record as runs
from ablations.schema.config import to_dict
from ablations.sweep import SweepOptions, resolve
from ablations.sweep.spec import experiment_info

REPO = Path(__file__).resolve().parents[1]
SEEDS = [0, 1]
VARIANTS = ["alternating", {"name": "bi", "set": {"train.epochs": 4}}, "bi_shared"]


def write_folder(root: Path, variants: list = VARIANTS) -> Path:
    """table2 on the smoke protocol (train.epochs: 2), bi setting train.epochs: 4 itself."""
    spec = yaml.safe_load((REPO / "ablations" / "experiments.yaml").read_text())
    spec["experiments"]["table2"]["variants"] = variants
    path = root / "experiments.yaml"
    path.write_text(yaml.safe_dump(spec))
    opts = SweepOptions("table2", protocol="smoke", results=root / "res", seeds=SEEDS,
                        experiments_file=str(path))  # fmt: skip
    s = resolve(opts, check_data=False)
    (s.exp_dir / "runs").mkdir(parents=True, exist_ok=True)
    (s.exp_dir / "experiment.json").write_text(json.dumps(experiment_info(s)))
    for p in s.grid:
        rec = s.record_for(p)
        rec.science = s.sciences[p]
        rec.update(dict(fingerprint=runs.fingerprint(rec.science), state="COMPLETE",
                        top1=50.0 + p.seed, config=to_dict(s.configs[p]), epochs=2,
                        num_classes=4))  # fmt: skip
        rec.write(s.exp_dir / p.run_dir)
    runs.write_runs_csv(s.exp_dir / "runs.csv", runs.read_all(s.exp_dir))
    return s.exp_dir


def _line(devs: list[str], key: str) -> str:
    lines = [d for d in devs if d.startswith(f"{key}:")]
    assert len(lines) == 1, devs
    return lines[0]


def test_every_value_is_listed_with_its_runs(tmp_path):
    exp_dir = write_folder(tmp_path)
    exp = load_experiment(exp_dir)
    bi = next(r for r in exp.records if r.variant == "bi")
    assert not any(d.startswith("train.epochs") for d in bi.deviations)  # as the sweep records
    line = _line(deviations(exp), "train.epochs")
    assert line == (
        "train.epochs: 2 (paper: 400) (alternating-s0, alternating-s1, bi_shared-s0, "
        "bi_shared-s1); 4 (bi-s0, bi-s1; set by the variant)"
    )
    assert "only" not in line  # never implies the others ran the paper's value
    assert f"- {line}" in header(exp)


def test_a_value_all_runs_share_names_no_runs(tmp_path):
    exp_dir = write_folder(tmp_path, ["alternating", "bi", "bi_shared"])
    assert _line(deviations(load_experiment(exp_dir)), "train.epochs") == (
        "train.epochs: 2 (paper: 400)"
    )


def test_a_variant_at_the_papers_value_is_said_to_be(tmp_path):
    exp_dir = write_folder(tmp_path, ["alternating", {"name": "bi", "set": {"train.epochs": 400}}])
    line = _line(deviations(load_experiment(exp_dir)), "train.epochs")
    assert line.endswith("; 400 (bi-s0, bi-s1; set by the variant, the paper's value)"), line
