"""Command line: ``vil-ablate`` / ``python run_ablation.py`` (argparse, thin over the modules).

The commands import their modules when they run (so ``--help`` imports no torch); the
modules themselves import only downward (the layers in pyproject.toml, ``lint-imports``).

Commands: list, sweep EXP [--tuned], submit EXP --time T, tune EXP --budget N,
show EXP [VARIANT], status EXP, report EXP, compare A B, eval, paths, influence, prepare, doctor.
Configuration problems print one line (file, key path, valid choices) and exit with code 2,
before any training.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from ablations.app.cli_args import build_parser, sweep_command_line, sweep_options
from ablations.schema.errors import ConfigError

EXIT_CONFIG, EXIT_IO, EXIT_INTERRUPTED = 2, 1, 130


def cmd_list(args: argparse.Namespace) -> int:
    import vil
    from ablations.schema.catalog import load_catalog

    cat = load_catalog(args.experiments)
    data = {
        "traversals": {n: t.description for n, t in vil.TRAVERSALS.items()},
        "poolings": {n: p.description for n, p in vil.POOLINGS.items()},
        "experiments": {n: {"axis": e.axis, "reference": e.reference, "variants": e.variant_names,
                            "seeds": list(e.seeds), "description": e.description}
                        for n, e in cat.experiments.items()},
        "protocols": {n: {"description": cat.descriptions.get(n, ""),
                          "default": n == cat.default_protocol} for n in cat.protocols},
    }  # fmt: skip
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for key in ("traversals", "poolings"):
        print(f"{key}:")
        for n, d in data[key].items():
            print(f"  {n:<20} {d}")
    print("experiments:")
    for n, e in data["experiments"].items():
        print(f"  {n:<12} {e['axis']}: {', '.join(e['variants'])} (reference {e['reference']})")
    print("protocols:")
    for n, p in data["protocols"].items():
        head = f"  {n:<8}{' (default)' if p['default'] else ''} "
        print(textwrap.fill(p["description"], 100, initial_indent=head, subsequent_indent=" " * 10))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from ablations.app import sweep_command
    from ablations.tune.worker import resolve_tuned

    s = resolve_tuned(sweep_options(args), check_data=not args.dry_run)
    if args.dry_run:
        return _dry_run(s, args)
    return sweep_command.run(s, args)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ablations.app import calibrate_command

    s = calibrate_command.resolve(args, check_data=not args.dry_run)
    if args.dry_run:
        return _dry_run(s, args)
    return calibrate_command.run(s, args)


def cmd_submit(args: argparse.Namespace) -> int:
    from ablations.app.submit_checks import require_submitit
    from ablations.tune.worker import resolve_tuned

    require_submitit()  # one line, exit 2, before submit_command imports it
    from ablations.app import submit_command

    s = resolve_tuned(sweep_options(args), check_data=False)  # devices: the nodes', not ours
    return submit_command.run(s, args, args.argv)


def cmd_tune(args: argparse.Namespace) -> int:
    from ablations.app import tune_command as command

    if args.budget is not None and args.budget < 1:
        raise ConfigError(f"--budget: expected a positive number of trials, got {args.budget}")
    job = command.make_job(sweep_options(args), args.budget, check_data=not args.dry_run)
    return command.dry_run(job, args.json) if args.dry_run else command.run(job, args)


def _dry_run(s: Any, args: argparse.Namespace) -> int:
    """The trial list and its cost, after the same checks as a sweep (nothing is written).
    Without a data.root the data are priced from what is known of the dataset."""
    from ablations.sweep import checks
    from ablations.sweep.plan import format_plan, model_notes, plan

    has_root = checks.data_checkable(s)
    summaries = checks.check_all(s, data=has_root)
    rows = plan(s, summaries)
    if args.measure:
        from ablations.sweep.plan import add_measured

        add_measured(s, rows)
    header = f"{s.study_name}: {len(rows)} trials -> {s.exp_dir}"
    if not has_root:
        header += "\n(data not checked: data.root is not set)"
    print(json.dumps(rows, indent=2) if args.json else format_plan(rows, header))
    for note in model_notes(s):  # on stderr: the JSON on stdout stays a list of rows
        print(f"warning: {note}", file=sys.stderr)
    print(_seeds_statement(s), file=sys.stderr if args.json else sys.stdout)
    return 0


def _seeds_statement(s: Any) -> str:
    """What the grid's seeds resolve, from a measured spread of this protocol and dataset."""
    from ablations.report.calibration_out import dataset_keys
    from ablations.report.planning import known_spread, seeds_line

    ref = [p for p in s.grid if p.variant == s.exp.reference] or s.grid
    dataset = dataset_keys(s.sciences[ref[0]])
    n = len({p.seed for p in s.grid})
    spread = known_spread(s.opts.results, s.protocol, dataset)
    return seeds_line(spread, n, s.opts.results, s.protocol)


def cmd_show(args: argparse.Namespace) -> int:
    from ablations.app import show_command
    from ablations.tune.worker import resolve_tuned

    return show_command.run(resolve_tuned(sweep_options(args), check_data=False), args)


def find_protocol(args: argparse.Namespace) -> None:
    """Without --protocol: the protocol folder of ``--results`` that holds the experiment
    when the default one does not (one line listing them when several do)."""
    from ablations.schema.catalog import load_catalog
    from ablations.schema.errors import ConfigError

    if args.protocol:
        return
    default = load_catalog(args.experiments).default_protocol
    results = Path(args.results)
    found = sorted(
        p.parent.parent.name for p in results.glob(f"*/{args.experiment}/experiment.json")
    )
    if default in found or not found:
        return
    if len(found) > 1:
        raise ConfigError(f"{results}: {args.experiment} was swept under protocols "
                          f"{', '.join(found)}; pass --protocol NAME")  # fmt: skip
    args.protocol = found[0]


def cmd_status(args: argparse.Namespace) -> int:
    from ablations.schema.files import unwritable
    from ablations.sweep import rows, worker
    from ablations.sweep.spec import stale_points
    from ablations.tune.worker import resolve_tuned

    find_protocol(args)
    s = resolve_tuned(sweep_options(args), check_data=False)
    if not s.exp_dir.is_dir():
        print(f"{s.study_name}: not started ({s.exp_dir} does not exist); start it with: "
              f"{sweep_command_line(args, s.protocol)}")  # fmt: skip
        return 0
    study = worker.load_study(s)
    records = rows.collect(s.exp_dir, study)  # reading only: a read-only folder is fine
    for r in records:
        top1 = f"{r.top1:.2f}" if isinstance(r.top1, float) else ""
        print(f"{r.variant:<20} s{r.seed:<4} {r.state:<11} {top1:>7} {r.fail_reason or ''}")
    counts = rows.counts(records)
    print(f"{s.study_name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for line in stale_points(s):  # what `sweep` would stop on (this command's config)
        print(f"stale: {line}; sweep stops on it (--rerun retrains it)")
    why = unwritable(s.exp_dir)
    if why is None:
        print(f"runs: {rows.write_runs(s.exp_dir, study)}")
    else:
        print(f"runs: {s.exp_dir / 'runs.csv'} not refreshed ({why})")
    from ablations.study.tune import summary_lines

    for line in summary_lines(s.place, s.exp.variant_names):  # tune studies, where there are any
        print(line)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ablations.report import build_report, write_index
    from ablations.schema.files import unwritable
    from ablations.sweep import rows, worker
    from ablations.tune.worker import resolve_tuned

    find_protocol(args)
    s = resolve_tuned(sweep_options(args), check_data=False)
    if not (s.exp_dir / "experiment.json").is_file():
        make = sweep_command_line(args, s.protocol)
        raise ConfigError(f"{s.exp_dir} holds no sweep yet; make one with: {make}")
    include = getattr(args, "include_truncated", False)
    if getattr(args, "stdout", False):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="vil-ablate-report-") as tmp:
            rows.write_runs(s.exp_dir, worker.load_study(s), Path(tmp) / "runs.csv")
            print(build_report(s.exp_dir, include, Path(tmp)).read_text())
        return 0
    out = Path(args.out) if getattr(args, "out", None) else s.exp_dir
    why = unwritable(out)
    if why is not None:
        raise ConfigError(f"report: {out}: {why}; pass --out DIR (elsewhere) or --stdout")
    rows.write_runs(s.exp_dir, worker.load_study(s), out / "runs.csv" if out != s.exp_dir else None)
    page = build_report(s.exp_dir, include, out if out != s.exp_dir else None)
    print(f"report: {page}")
    print(f"html: {page.with_suffix('.html')}")
    if out == s.exp_dir:  # the index links the reports in the results folder
        print(f"index: {write_index(Path(args.results))}")
    return 0


def cmd_paths(args: argparse.Namespace) -> int:
    from ablations.report.traversal_figure import draw_paths

    try:
        h, w = (int(x) for x in args.grid.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--grid: expected HxW, e.g. 6x8, got {args.grid!r}") from None
    out = Path(args.out) if args.out else Path(args.results) / "paths"
    for path in draw_paths(out, h=h, w=w, names=args.names or None):
        print(path)
    return 0


def cmd_influence(args: argparse.Namespace) -> int:
    from ablations.app import influence_command
    from ablations.sweep import resolve

    influence_command.check_modes(args)
    if args.experiment:
        s = resolve(sweep_options(args), check_data=False)
        for path in influence_command.main(args, s):
            print(path)
        if (s.exp_dir / "experiment.json").is_file() and not args.out:
            return cmd_report(args)  # the report gains its "Information flow" section
        return 0
    for path in influence_command.main(args, None):
        print(path)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ablations.report.compare import (
        CompareError,
        check_out,
        compare,
        default_stem,
        experiment_folder,
    )

    try:
        a, b = (
            experiment_folder(Path(x), args.experiment, args.protocol) for x in (args.a, args.b)
        )
        out = Path(args.out) if args.out else default_stem(a, b)
        check_out(out, args.force)  # before any work: never overwrites without --force
        path, text = compare(a, b, out)
    except CompareError as e:
        raise ConfigError(str(e)) from None
    print(text)
    print(f"compare: {path} (and .csv, .tex)")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from ablations.data import prepare_cache
    from ablations.schema.catalog import load_catalog
    from ablations.schema.config import apply, parse_set, validate

    cat = load_catalog(args.experiments)
    cfg = validate(apply(cat.protocol(args.protocol), parse_set(args.set), "--set"), "--set")
    if cfg.data.dataset == "synthetic":
        print("the synthetic dataset is generated in memory: nothing to prepare")
        return 0
    print(f"cache: {prepare_cache(cfg.data, progress=True)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ablations.app import evaluate
    from ablations.schema.catalog import load_catalog
    from ablations.schema.config import apply, parse_set

    overrides = parse_set(args.set)
    if args.device:
        overrides.setdefault("train", {})["device"] = args.device
    if args.run:
        cfg = evaluate.run_config(Path(args.run), overrides)
    else:
        cfg = apply(load_catalog(args.experiments).protocol(args.protocol), overrides, "--set")
    result = evaluate.main(cfg, Path(args.run) if args.run else None,
                           Path(args.out) if args.out else None)  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  val loss "
              f"{result['val_loss']:.4f}  ({result['val_images']} images, "
              f"{result['num_classes']} classes, weights {result['weights']})")  # fmt: skip
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ablations.app import doctor

    doctor.main(args)
    return 0


COMMANDS = {"list": cmd_list, "sweep": cmd_sweep, "submit": cmd_submit, "tune": cmd_tune,
            "calibrate": cmd_calibrate,
            "show": cmd_show,
            "status": cmd_status,
            "report": cmd_report, "paths": cmd_paths, "prepare": cmd_prepare, "eval": cmd_eval,
            "doctor": cmd_doctor, "influence": cmd_influence, "compare": cmd_compare}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vil-ablate`` and ``run_ablation.py``; returns the exit code."""
    args = build_parser().parse_args(argv)  # before torch is imported: --help takes no time
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what submit hands its tasks
    import vil
    from ablations.data import DataConfigError
    from ablations.schema import imports
    from ablations.schema.errors import ConfigError
    from ablations.study.storage import StorageError
    from ablations.study.tune import TuneError
    from ablations.sweep import SweepError
    from ablations.train import PathError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")  # fmt: skip
    try:
        imports.from_env()  # a parent's imports (child_env), then this command line's
        imports.import_all(args.imports)
        return COMMANDS[args.command](args)
    except (ConfigError, DataConfigError, vil.UnknownNameError) as e:
        print(f"vil-ablate: error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except (SweepError, PathError, StorageError, TuneError) as e:
        print(f"vil-ablate: error: {e}", file=sys.stderr)
        return EXIT_IO
    except PermissionError as e:
        print(f"vil-ablate: error: cannot write {e.filename}: {e.strerror}", file=sys.stderr)
        return EXIT_IO
    except KeyboardInterrupt:
        print("vil-ablate: aborted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
