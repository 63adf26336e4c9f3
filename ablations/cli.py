"""Command line: ``vil-ablate`` / ``python run_ablation.py`` (argparse, thin over the modules).

Commands: list, sweep EXP [--tuned], tune EXP --budget N, status EXP, report EXP, eval,
paths, prepare, doctor. Configuration problems print one line (file, key path, valid choices)
and exit with code 2, before any training.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ablations.config import ConfigError, parse_set

EXIT_CONFIG, EXIT_IO, EXIT_INTERRUPTED = 2, 1, 130


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--experiments",
        metavar="PATH",
        help="experiments file (default: ./experiments.yaml, else the bundled one)",
    )
    p.add_argument("--protocol", help="protocol name (default: the file's default_protocol)")
    p.add_argument("--results", default="results", metavar="DIR", help="results folder")
    p.add_argument("--storage", metavar="URL",
                   help="Optuna storage: an RDB URL (postgresql://...) or a journal file path "
                        "(default: <results>/<experiment>/optuna.journal)")  # fmt: skip
    p.add_argument("--seeds", help="comma-separated seeds (default: the experiment's)")
    p.add_argument("--variants", help="comma-separated subset of the experiment's variants")
    p.add_argument("--device", help="cpu, cuda, cuda:N, ... (default: the config's, auto)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. train.epochs=5 (repeatable)")  # fmt: skip


def _include_truncated(p: argparse.ArgumentParser) -> None:
    p.add_argument("--include-truncated", action="store_true",
                   help="report runs stopped by train.time_limit_s / max_steps before "
                        "their last epoch (TRUNCATED) in tables and intervals")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vil-ablate", description="Vision-LSTM block-design ablations on Optuna."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="traversals, poolings, experiments and protocols")
    p.add_argument("--experiments", metavar="PATH")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("sweep", help="run (or resume) an experiment's grid")
    p.add_argument("experiment")
    _common(p)
    p.add_argument(
        "--dry-run", action="store_true", help="list trials, FLOPs and cost; no training"
    )
    p.add_argument("--json", action="store_true", help="with --dry-run: JSON output")
    p.add_argument("--measure", action="store_true",
                   help="with --dry-run: time train steps here, estimate wall time")  # fmt: skip
    p.add_argument("--rerun", action="store_true", help="retrain points that already finished")
    p.add_argument("--retry-failed", action="store_true", help="retrain points that failed")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--heartbeat", type=int, default=10, metavar="S", help="heartbeat interval")
    p.add_argument("--grace", type=int, default=60, metavar="S",
                   help="a RUNNING trial without heartbeat for S seconds is retried")  # fmt: skip
    p.add_argument("--plain", action="store_true", help="log lines instead of progress bars")
    p.add_argument("--no-report", action="store_true", help="skip the report at the end")
    _include_truncated(p)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # spawned worker
    p.add_argument("--tuned", action="store_true",
                   help="train each variant with its best parameters from `tune`")  # fmt: skip
    p = sub.add_parser("tune", help="tune each variant's lr/wd on the tuning split (Optuna TPE)")
    p.add_argument("experiment")
    _common(p)
    p.add_argument("--budget", type=int, metavar="N",
                   help="trials per variant, over all workers (default: tune.trials)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="price the tune; no training")
    p.add_argument("--json", action="store_true", help="with --dry-run: JSON output")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--heartbeat", type=int, default=10, metavar="S", help="heartbeat interval")
    p.add_argument("--grace", type=int, default=60, metavar="S", help="stale trial after S s")
    p.add_argument("--plain", action="store_true", help="log lines instead of progress bars")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # spawned worker
    for name, text in (("status", "state of every grid point"), ("report", "build the report")):
        p = sub.add_parser(name, help=text)
        p.add_argument("experiment")
        _common(p)
    _include_truncated(p)  # report
    p = sub.add_parser("paths", help="draw the traversal paths figure")
    p.add_argument("--out", default="results/paths", metavar="DIR")
    p.add_argument("--grid", default="6x8", metavar="HxW")
    p.add_argument("names", nargs="*", help="traversals (default: all)")
    p = sub.add_parser("prepare", help="build the image cache of a protocol's dataset")
    _common(p)
    p = sub.add_parser("eval", help="top-1/top-5 of a run's checkpoint or of pretrained weights")
    p.add_argument("--run", metavar="DIR", help="a run folder (runs/<variant>-s<seed>) of ours")
    p.add_argument("--experiments", metavar="PATH")
    p.add_argument("--protocol", help="protocol of the data (without --run)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: the config's, auto)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="e.g. model.pretrained=vil-t or data.root=/data/imagenet")  # fmt: skip
    p.add_argument("--out", metavar="FILE", help="also write the result as JSON")
    p.add_argument("--json", action="store_true", help="print JSON")
    from ablations.doctor import add_arguments

    add_arguments(sub.add_parser("doctor", help="check and measure the training path here"))
    return parser


def _seeds(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers, got {text!r}") from None


def sweep_options(args: argparse.Namespace) -> Any:
    from ablations.sweep import SweepOptions

    return SweepOptions(
        experiment=args.experiment, protocol=args.protocol, results=Path(args.results),
        storage=args.storage, seeds=_seeds(args.seeds), device=args.device,
        variants=[v for v in (args.variants or "").split(",") if v] or None,
        rerun=getattr(args, "rerun", False), retry_failed=getattr(args, "retry_failed", False),
        overrides=parse_set(args.set), experiments_file=args.experiments,
        heartbeat_s=getattr(args, "heartbeat", 10), grace_s=getattr(args, "grace", 60),
        tuned=getattr(args, "tuned", False),
    )  # fmt: skip


def cmd_list(args: argparse.Namespace) -> int:
    import vil
    from ablations.experiments import load_catalog

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
        print(f"  {n:<8}{' (default)' if p['default'] else ''} {p['description'][:90]}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from ablations.sweep import command, resolve

    s = resolve(sweep_options(args), check_data=not args.dry_run)
    if args.dry_run:
        return _dry_run(s, args)
    return command.run(s, args)


def cmd_tune(args: argparse.Namespace) -> int:
    from ablations.tune import command

    if args.budget is not None and args.budget < 1:
        raise ConfigError(f"--budget: expected a positive number of trials, got {args.budget}")
    job = command.make_job(sweep_options(args), args.budget, check_data=not args.dry_run)
    return command.dry_run(job, args.json) if args.dry_run else command.run(job, args)


def _dry_run(s: Any, args: argparse.Namespace) -> int:
    """The trial list and its cost, after the same checks as a sweep (nothing is written).
    Without a data.root the data are priced from what is known of the dataset."""
    from ablations.sweep import checks
    from ablations.sweep.plan import format_plan, plan

    has_root = any(c.data.root or c.data.dataset == "synthetic" for c in s.configs.values())
    summaries = checks.check_all(s, data=has_root)
    rows = plan(s, summaries)
    if args.measure:
        from ablations.sweep.plan import add_measured

        add_measured(s, rows)
    header = f"{s.study_name}: {len(rows)} trials -> {s.exp_dir}"
    if not has_root:
        header += "\n(data not checked: data.root is not set)"
    print(json.dumps(rows, indent=2) if args.json else format_plan(rows, header))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from ablations.sweep import resolve, rows, worker

    s = resolve(sweep_options(args), check_data=False)
    if not s.exp_dir.is_dir():
        print(f"{s.study_name}: not started ({s.exp_dir} does not exist)")
        return 0
    study = worker.load_study(s)
    path = rows.write_runs(s.exp_dir, study)
    records = rows.collect(s.exp_dir, study)
    for r in records:
        top1 = f"{r.top1:.2f}" if isinstance(r.top1, float) else ""
        print(f"{r.variant:<20} s{r.seed:<4} {r.state:<11} {top1:>7} {r.fail_reason or ''}")
    counts = rows.counts(records)
    print(f"{s.study_name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"runs: {path}")
    from ablations.tune.study import summary_lines

    for line in summary_lines(s, s.exp.variant_names):  # tune studies, where there are any
        print(line)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ablations.report import build_report, write_index
    from ablations.sweep import SweepError, resolve, rows, worker

    s = resolve(sweep_options(args), check_data=False)
    if not (s.exp_dir / "experiment.json").is_file():
        raise SweepError(f"{s.exp_dir} holds no sweep: run `sweep {s.exp.name}` first")
    rows.write_runs(s.exp_dir, worker.load_study(s))
    print(f"report: {build_report(s.exp_dir, include_truncated=args.include_truncated)}")
    print(f"index: {write_index(Path(args.results))}")
    return 0


def cmd_paths(args: argparse.Namespace) -> int:
    from ablations.paths import draw_paths

    try:
        h, w = (int(x) for x in args.grid.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--grid: expected HxW, e.g. 6x8, got {args.grid!r}") from None
    for path in draw_paths(Path(args.out), h=h, w=w, names=args.names or None):
        print(path)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from ablations.config import apply, validate
    from ablations.data import prepare_cache
    from ablations.experiments import load_catalog

    cat = load_catalog(args.experiments)
    cfg = validate(apply(cat.protocol(args.protocol), parse_set(args.set), "--set"), "--set")
    if cfg.data.dataset == "synthetic":
        print("the synthetic dataset is generated in memory: nothing to prepare")
        return 0
    print(f"cache: {prepare_cache(cfg.data, progress=True)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ablations import evaluate
    from ablations.config import apply
    from ablations.experiments import load_catalog

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
    from ablations import doctor

    doctor.main(args)
    return 0


COMMANDS = {"list": cmd_list, "sweep": cmd_sweep, "tune": cmd_tune, "status": cmd_status,
            "report": cmd_report, "paths": cmd_paths, "prepare": cmd_prepare, "eval": cmd_eval,
            "doctor": cmd_doctor}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vil-ablate`` and ``run_ablation.py``; returns the exit code."""
    import vil
    from ablations.data import DataConfigError
    from ablations.sweep import SweepError
    from ablations.sweep.storage import StorageError
    from ablations.train import PathError
    from ablations.tune.study import TuneError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")  # fmt: skip
    try:
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
