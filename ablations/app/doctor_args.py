"""The doctor's flags, apart from its checks: ``vil-ablate --help`` builds every subparser,
and the checks import torch (seconds) while the flags need only argparse."""

from __future__ import annotations

import argparse
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The doctor's flags (``vil-ablate doctor``, ``python -m ablations.app.doctor``)."""
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--reduced", action="store_true", default=None,
                   help="CI mode: nano model, 16 px, tiny batch (default on CPU)")  # fmt: skip
    p.add_argument("--full", dest="reduced", action="store_false", help="full mode on CPU too")
    p.add_argument("--traversals", nargs="+", help="default: every registered traversal")
    p.add_argument("--steps", type=int, help="fixed-batch train steps per traversal (10/4)")
    p.add_argument("--repeats", type=int, help="timed steps after them (median; 5/1)")
    p.add_argument("--batch", type=int, help="per-step batch (256 full, 8 reduced)")
    p.add_argument("--compile", default="auto", choices=("auto", "on", "off"))
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="auto: bf16 autocast on CUDA, fp32 on CPU")  # fmt: skip
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="loader workers")
    p.add_argument("--loader-seconds", type=float, default=None, help="loader timing (10/1)")
    p.add_argument("--no-ddp", dest="ddp", action="store_false", help="skip the DDP check")
    p.add_argument("--results", default="results", metavar="DIR", help="results folder")
    p.add_argument("--out", help="JSON output path (default: <results>/doctor.json)")
    p.add_argument("--md", help="Markdown section output path (default: <results>/doctor.md)")
    p.add_argument("--ddp-worker", metavar="PATH", help=argparse.SUPPRESS)  # one DDP rank
