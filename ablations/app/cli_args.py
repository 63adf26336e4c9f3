"""The command line's arguments: ``build_parser`` and the sweep options they give (argparse
only: ``--help`` imports no torch)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ablations.app.doctor_args import add_arguments
from ablations.app.submit_args import add_arguments as add_submit_arguments
from ablations.schema.errors import ConfigError


def _common(
    p: argparse.ArgumentParser,
    seeds_help: str = "comma-separated seeds (default: the experiment's)",
) -> None:
    p.add_argument(
        "--experiments",
        metavar="PATH",
        help="experiments file (default: ./experiments.yaml, else the bundled one)",
    )
    p.add_argument("--protocol", help="protocol name (default: the file's default_protocol)")
    p.add_argument("--results", default="results", metavar="DIR", help="results folder")
    p.add_argument("--storage", metavar="URL",
                   help="Optuna storage: an RDB URL (postgresql://...) or a journal file path "
                        "(default: a journal in <results>/<protocol>/<experiment>/)")  # fmt: skip
    p.add_argument("--seeds", help=seeds_help)
    p.add_argument("--variants", help="comma-separated subset of the experiment's variants")
    p.add_argument("--device", help="cpu, cuda, cuda:N, ... (default: the config's, auto)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. train.epochs=5 (repeatable)")  # fmt: skip


def _include_truncated(p: argparse.ArgumentParser) -> None:
    p.add_argument("--include-truncated", action="store_true",
                   help="report runs stopped by train.time_limit_s / max_steps before "
                        "their last epoch (TRUNCATED) in tables and intervals")  # fmt: skip


def _sweep_only(p: argparse.ArgumentParser, shown: bool = False) -> None:
    """The sweep's flags that say how to run: accepted and ignored, so that a sweep's command
    line works with ``status`` or ``report`` in its place."""
    quiet = {"help": argparse.SUPPRESS, "default": argparse.SUPPRESS}  # unset: sweep defaults
    for flag in ("--workers", "--heartbeat", "--grace"):
        p.add_argument(flag, type=int, **quiet)
    for flag in ("--dry-run", "--measure", "--json", "--rerun", "--retry-failed", "--plain",
                 "--no-report"):  # fmt: skip
        p.add_argument(flag, action="store_true", **quiet)
    if shown:  # report: its own flag, in its help
        _include_truncated(p)
    else:
        p.add_argument("--include-truncated", action="store_true", **quiet)
    p.add_argument("--tuned", action="store_true", default=argparse.SUPPRESS,
                   help="the grid of `sweep --tuned` (tuned parameters)")  # fmt: skip


def _sweep_flags(p: argparse.ArgumentParser) -> None:
    """How a sweep trains its grid: shared by ``sweep`` and ``submit``."""
    p.add_argument("--rerun", action="store_true", help="retrain points that already finished")
    p.add_argument("--retry-failed", action="store_true", help="retrain points that failed")
    p.add_argument("--heartbeat", type=int, default=10, metavar="S", help="heartbeat interval")
    p.add_argument("--grace", type=int, default=60, metavar="S",
                   help="a RUNNING trial without heartbeat for S seconds is retried")  # fmt: skip
    p.add_argument("--plain", action="store_true", help="log lines instead of progress bars")
    p.add_argument("--no-report", action="store_true", help="skip the report at the end")
    _include_truncated(p)
    p.add_argument("--tuned", action="store_true",
                   help="train each variant with its best parameters from `tune`")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vil-ablate", description="Vision-LSTM block-design ablations on Optuna."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _run_commands(sub)
    _calibrate_command(sub)
    _other_commands(sub)
    for p in sub.choices.values():  # every command: a user's own parts (schema/imports.py)
        p.add_argument("--import", dest="imports", action="append", default=[],
                       metavar="MODULE_OR_FILE",
                       help="import a module or .py file first, e.g. one that registers a "
                            "traversal (repeatable; workers get it too)")  # fmt: skip
    return parser


def _run_commands(sub: Any) -> None:
    """list, sweep, submit, tune, show, status, report."""
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
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    _sweep_flags(p)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # spawned worker
    p = sub.add_parser("submit", help="run an experiment's grid as SLURM jobs (submitit)")
    p.add_argument("experiment")
    _common(p)
    _sweep_flags(p)
    add_submit_arguments(p)
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
    p = sub.add_parser("show", help="one point's merged config and the layer of each value")
    p.add_argument("experiment")
    p.add_argument("variant", nargs="?", help="default: the experiment's reference")
    _common(p)
    p.add_argument("--tuned", action="store_true", help="with the variant's tuned parameters")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    for name, text in (("status", "state of every grid point"), ("report", "build the report")):
        p = sub.add_parser(name, help=text)
        p.add_argument("experiment")
        _common(p)
        _sweep_only(p, shown=name == "report")
    p.add_argument("--out", metavar="DIR",
                   help="write the report (and its runs.csv) there; the experiment folder is "
                        "only read (default: the experiment folder)")  # fmt: skip
    p.add_argument("--stdout", action="store_true",
                   help="print report.md, write nothing (figures are left out)")  # fmt: skip


def _calibrate_command(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="A/A test and planted effect: the report's statistics "
                       "on this protocol's training noise (docs/statistics.md)")  # fmt: skip
    _common(p, seeds_help="seeds, e.g. 0-19 or 0,1,2 (default: 0-19)")
    p.set_defaults(seeds="0-19")
    p.add_argument("--experiment", default="table2",
                   help="whose reference variant is calibrated (default: table2)")  # fmt: skip
    p.add_argument("--planted", action="append", default=[], metavar="KEY=VALUE",
                   help="what makes the planted arm worse (repeatable; default: "
                        "data.label_noise=0.2)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="list trials and cost; no training")
    p.add_argument("--json", action="store_true", help="with --dry-run: JSON output")
    p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--analyse-only", action="store_true",
                   help="no training: analyse the seeds every arm has finished")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    _sweep_flags(p)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)


def _probes(text: str) -> int | str:
    """--probes: a number (checked later, one line) or ``exact``."""
    return text if text == "exact" else int(text) if text.lstrip("-").isdigit() else text


def _other_commands(sub: Any) -> None:
    """paths, influence, compare, prepare, eval, doctor."""
    p = sub.add_parser("paths", help="draw the traversal paths figure")
    p.add_argument("--results", default="results", metavar="DIR", help="results folder")
    p.add_argument("--out", metavar="DIR", help="figure folder (default: <results>/paths)")
    p.add_argument("--grid", default="6x8", metavar="HxW")
    p.add_argument("names", nargs="*", help="traversals (default: all)")
    p = sub.add_parser("influence", help="token-influence maps and mLSTM's implicit attention")
    p.add_argument("experiment", nargs="?", help="its variants (trained runs where finished)")
    _common(p)
    p.add_argument("--traversals", metavar="A,B", help="traversals on --protocol, at init")
    p.add_argument("--run", metavar="DIR", help="a run folder: at init and its checkpoint")
    p.add_argument("--images", type=int, default=16, metavar="N", help="inputs (default 16)")
    p.add_argument("--inputs", default="val", help="val (the dataset's images) or random")
    p.add_argument("--probes", type=_probes, default=2, metavar="N|exact",
                   help="Jacobian-norm probes per image (default 2), or exact: one backward "
                        "pass per readout channel (width/N times the cost)")  # fmt: skip
    p.add_argument("--chunk", type=int, default=4, metavar="N",
                   help="images per autograd graph (default 4; bounds memory)")  # fmt: skip
    p.add_argument("--out", metavar="DIR", help="default: <experiment or run folder>/influence")
    p = sub.add_parser("compare", help="two experiment folders side by side, paired by seed")
    p.add_argument("a", metavar="A", help="experiment folder (or results folder + --experiment)")
    p.add_argument("b", metavar="B", help="the other one; the table shows B - A")
    p.add_argument("--experiment", help="with results folders: the experiment to compare")
    p.add_argument("--protocol", help="with results folders: its protocol folder")
    p.add_argument("--out", metavar="STEM",
                   help="STEM.md/.csv/.tex (default: <A's results folder>/compare/"
                        "<A>-vs-<B>-<hash of both paths>)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite an earlier comparison")
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
    add_arguments(sub.add_parser("doctor", help="check and measure the training path here"))


def _seeds(text: str | None) -> list[int] | None:
    """``--seeds``: distinct non-negative integers (None: not given, the experiment's)."""
    if text is None:
        return None
    if not text.strip():
        raise ConfigError("--seeds: empty; give comma-separated non-negative integers, e.g. 0,1,2")
    items = [x for s in text.split(",") for x in _seed_range(s.strip())]
    bad = [s for s in items if not s.isdigit()]
    if bad:
        raise ConfigError(f"--seeds: expected comma-separated non-negative integers or "
                          f"ranges A-B, got {text!r} ({bad[0]!r} is not one)")  # fmt: skip
    return [int(s) for s in _distinct("--seeds", items)]


def _seed_range(item: str) -> list[str]:
    """``"3-5"`` -> ["3", "4", "5"]; anything else as it is (checked by the caller)."""
    a, sep, b = item.partition("-")
    if sep and a.isdigit() and b.isdigit() and int(a) <= int(b):
        return [str(i) for i in range(int(a), int(b) + 1)]
    return [item]


def _variants(text: str | None) -> list[str] | None:
    """``--variants``: distinct names (None: not given, all of the experiment's)."""
    if text is None:
        return None
    items = [v.strip() for v in text.split(",")]
    if not all(items):
        raise ConfigError(f"--variants: expected comma-separated variant names, got {text!r}")
    return _distinct("--variants", items)


def _distinct(flag: str, items: list[str]) -> list[str]:
    twice = sorted({s for s in items if items.count(s) > 1}, key=items.index)
    if twice:
        raise ConfigError(f"{flag}: {', '.join(twice)} given twice; each once")
    return items


def sweep_options(args: argparse.Namespace) -> Any:
    from ablations.schema.config import parse_set  # here: --help imports no torch
    from ablations.sweep import SweepOptions

    return SweepOptions(
        experiment=args.experiment, protocol=args.protocol, results=Path(args.results),
        storage=args.storage, seeds=_seeds(args.seeds), device=args.device,
        variants=_variants(args.variants),
        rerun=getattr(args, "rerun", False), retry_failed=getattr(args, "retry_failed", False),
        overrides=parse_set(args.set), experiments_file=args.experiments,
        heartbeat_s=getattr(args, "heartbeat", 10), grace_s=getattr(args, "grace", 60),
        tuned=getattr(args, "tuned", False),
    )  # fmt: skip


def sweep_command_line(args: argparse.Namespace, protocol: str, *extra: str) -> str:
    """The ``sweep`` command for the grid that ``args`` name (the one that makes, resumes or
    recovers it; ``extra``: flags to add, e.g. ``--retry-failed``)."""
    import shlex

    out = ["vil-ablate", "sweep", args.experiment]
    if getattr(args, "command", None) == "calibrate":  # its grid is made by calibrate only
        out = ["vil-ablate", "calibrate", "--experiment", args.experiment]
        out += [x for kv in args.planted for x in ("--planted", kv)]
    for flag, value in (("--experiments", args.experiments), ("--protocol", protocol),
                        ("--results", args.results), ("--storage", args.storage),
                        ("--variants", args.variants), ("--seeds", args.seeds),
                        ("--device", args.device)):  # fmt: skip
        out += [flag, str(value)] if value is not None else []
    for kv in args.set:
        out += ["--set", kv]
    out += ["--tuned"] if getattr(args, "tuned", False) else []
    return shlex.join([*out, *extra])
