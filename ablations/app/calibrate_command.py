"""The ``calibrate`` command: train the calibration arms as a sweep (resumable, recorded;
ablations/sweep/calibration.py), then check the report's statistics on them
(ablations/report/calibration.py) and write calibration.md/.csv/.png/.json in the folder.

Exit code: the sweep's (0 every point done, 1 some not, 130 interrupted), and 1 when the
pairing the statistics rely on is broken (the records' digests say so).
"""

from __future__ import annotations

import argparse
from typing import Any

from ablations.app import sweep_command
from ablations.app.cli_args import sweep_options
from ablations.report import calibration as calib
from ablations.report import calibration_out as out
from ablations.report.load import load_experiment
from ablations.schema.config import ConfigError, flatten, parse_set
from ablations.sweep import calibration as arms
from ablations.sweep import rows, spec, worker


def planted(items: list[str]) -> dict[str, Any]:
    """``--planted KEY=VALUE`` (repeatable) as flat keys; none: the default label noise."""
    flat = flatten(parse_set(items, "--planted")) if items else dict(arms.DEFAULT_PLANTED)
    if not flat:
        raise ConfigError("--planted: expected KEY=VALUE, e.g. data.label_noise=0.2")
    return flat


def resolve(args: argparse.Namespace, check_data: bool = True) -> spec.Sweep:
    """The calibration sweep the arguments name (validated, nothing written)."""
    if getattr(args, "tuned", False):
        raise ConfigError(
            "calibrate: --tuned is not supported; valid: calibrate the protocol's "
            "reference as it trains untuned (its tuned values: --set KEY=VALUE)"
        )
    return arms.resolve_calibration(sweep_options(args), args.experiment, planted(args.planted),
                                    check_data)  # fmt: skip


def run(s: spec.Sweep, args: argparse.Namespace) -> int:
    """Train what is missing, then analyse every paired seed that finished."""
    if args.analyse_only:  # a calibration still training, or trained elsewhere
        return analyse(s)
    args.no_report = True  # the calibration page is this command's report
    code = sweep_command.run(s, args)
    if args.child or code == 130:
        return code
    return max(code, analyse(s))


def analyse(s: spec.Sweep) -> int:
    """Write the calibration of the folder; 1 when the pairing is broken, else 0."""
    rows.write_runs(s.exp_dir, worker.load_study(s))
    exp = load_experiment(s.exp_dir)
    cal = calib.analyse(exp)
    if len(cal.seeds) < 2:
        print(f"calibration: {len(cal.seeds)} paired seed(s) finished; nothing to analyse yet")
        return 1
    paths = out.write(cal, out.context(exp), s.exp_dir)
    print(out.table_markdown(cal, out.context(exp)))
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0 if cal.pairing["ok"] else 1
