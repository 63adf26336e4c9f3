"""Images/s of the uint8 cache reader vs decoding JPEGs with torchvision's ImageFolder.

Both paths apply the same paper train transforms (RandomResizedCrop 0.08-1 bicubic, flip,
3-Augment, ColorJitter, normalise) on the fly, one process (like one DataLoader worker):
the cache with its fused uint8-tensor pipeline (``fastaug``; also timed with the plain v2
pipeline, to show where the gain comes from), ImageFolder with the torchvision v2 pipeline.
By default on a generated folder of ImageNet-sized JPEGs (500x375 and similar), or on
``--root`` (a folder with train/<class>/ and val/<class>/). Nothing asserts a time.

    .venv/bin/python benchmarks/bench_data.py --quick            # seconds, for CI
    .venv/bin/python benchmarks/bench_data.py --out results/bench_data.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from ablations.data import DataConfig, build_datasets, prepare_cache  # noqa: E402
from ablations.data.jpegs import make_jpegs  # noqa: E402
from ablations.data.transforms import train_transform, v2_train_transform  # noqa: E402


def _batches(loader: DataLoader):
    while True:  # endless: epochs back to back
        yield from loader


def time_readers(readers: dict, min_seconds: float, rounds: int = 3) -> dict[str, tuple]:
    """Images/s per reader, measured in interleaved rounds (at least one batch each) so
    that load changes on a shared machine hit every reader alike: name -> (img/s, n)."""
    streams = {
        k: _batches(DataLoader(ds, batch_size=32, shuffle=True)) for k, ds in readers.items()
    }
    totals = {k: [0, 0.0] for k in readers}
    for _ in range(rounds):
        for name, stream in streams.items():
            start = time.perf_counter()
            while True:
                totals[name][0] += len(next(stream)[0])
                if time.perf_counter() - start >= min_seconds / rounds:
                    break
            totals[name][1] += time.perf_counter() - start
    return {k: (n / s, n) for k, (n, s) in totals.items()}


def run(root: Path, cache_dir: Path, img_size: int, min_seconds: float) -> dict:
    """Build the cache (timed once), then time both readers."""
    cfg = DataConfig(dataset="imagefolder", root=str(root), img_size=img_size,
                     cache_dir=str(cache_dir), augment="paper")  # fmt: skip
    t = time.perf_counter()
    folder = prepare_cache(cfg, progress=False)
    build_s = time.perf_counter() - t
    cached = build_datasets(cfg).train
    baseline = ImageFolder(str(root / "train"), transform=train_transform("paper", img_size, "raw"))
    cached_v2 = copy.copy(cached)  # same memmap reader, plain torchvision v2 pipeline
    cached_v2.transform = v2_train_transform("paper", img_size, "square")
    readers = {"cache": cached, "cache_v2": cached_v2, "imagefolder": baseline}
    time_readers(readers, 0.0, rounds=1)  # warm-up: page cache, lazy imports
    rates = time_readers(readers, min_seconds)
    (cached_ips, cached_n), (cached_v2_ips, _), (folder_ips, folder_n) = rates.values()
    return {
        "img_size": img_size,
        "stored_size": cfg.stored_size,
        "train_images": len(cached),
        "cache_build_s": round(build_s, 3),
        "cache_path": str(folder),
        "cache_images_per_s": round(cached_ips, 1),
        "cache_v2_pipeline_images_per_s": round(cached_v2_ips, 1),
        "imagefolder_images_per_s": round(folder_ips, 1),
        "speedup": round(cached_ips / folder_ips, 2),
        "images_timed": {"cache": cached_n, "imagefolder": folder_n},
    }


def print_table(result: dict) -> None:
    rows = [
        ("uint8 cache + paper transforms (fused)", result["cache_images_per_s"]),
        ("uint8 cache + paper transforms (plain v2)", result["cache_v2_pipeline_images_per_s"]),
        ("ImageFolder JPEG decode + paper transforms", result["imagefolder_images_per_s"]),
    ]
    print(f"\n{'reader':<46}{'images/s':>12}")
    for name, ips in rows:
        print(f"{name:<46}{ips:>12.1f}")
    print(f"{'speedup (goal >= 5x)':<46}{result['speedup']:>11.2f}x")
    print(f"one-time cache build: {result['cache_build_s']:.2f} s for the whole dataset\n")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", help="image folder with train/ and val/ (default: generated)")
    p.add_argument("--quick", action="store_true", help="tiny run for CI (seconds)")
    p.add_argument("--out", default="results/bench_data.json", help="JSON output path")
    p.add_argument("--img-size", type=int, default=128)
    p.add_argument("--images", type=int, default=400, help="generated images (train+val)")
    p.add_argument("--seconds", type=float, default=5.0, help="minimum timing per reader")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 = one worker)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    n_images, seconds = (60, 0.5) if args.quick else (args.images, args.seconds)
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = Path(args.root) if args.root else make_jpegs(Path(tmp) / "jpegs", n_images, 10)
        result = run(root, Path(tmp) / "cache", args.img_size, seconds)
    result.update(
        root=args.root or f"generated ({n_images} JPEGs, ImageNet-like sizes)",
        quick=args.quick,
        torch_threads=args.threads,
        torch=torch.__version__,
        machine=platform.machine(),
        cpus=os.cpu_count(),
        load_avg_1min=round(os.getloadavg()[0], 2),  # other work on the machine skews timings
        python=platform.python_version(),
    )
    print_table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
