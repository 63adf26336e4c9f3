"""Shared benchmark helpers: device choice, arguments, and (from ablations.train.instruments)
timing, peak memory, the environment header and output. See that module for what is measured."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from ablations.schema.files import write_json  # noqa: F401  (the scripts import it from here)
from ablations.train.instruments import (  # noqa: F401  (the scripts import them from here)
    MIB,
    PeakMemory,
    Timing,
    cpu_busy,
    cpu_model,
    environment,
    header_line,
    measure,
    print_table,
    quiet_profiler,
    source_digest,
    sync,
)


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def set_threads(n: int | None) -> None:
    """Set torch's intra-op threads when asked (0/None keeps the default)."""
    if n:
        torch.set_num_threads(n)


def base_parser(description: str, default_out: str) -> argparse.ArgumentParser:
    """Arguments every benchmark takes: --device, --out, --quick, --warmup, --repeats, ..."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out", default=default_out, help="JSON output path")
    p.add_argument("--quick", action="store_true", help="tiny CI setting: seconds, not minutes")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls before timing")
    p.add_argument("--repeats", type=int, default=None, help="timed calls (median reported)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    p.add_argument("--note", default="", help="free text stored in the JSON (e.g. 'CPU shared')")
    return p


def timing_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill --warmup / --repeats left unset: 1 warm-up; 1 timed call in --quick, else 3."""
    args.warmup = 1 if args.warmup is None else args.warmup
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


def start(args: argparse.Namespace) -> tuple[torch.device, dict[str, Any]]:
    """Every script's opening: threads, device, environment record, printed header line."""
    set_threads(args.threads)
    device = resolve_device(args.device)
    env = environment(device, args.note)
    print(header_line(env))
    return device, env
