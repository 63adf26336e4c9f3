"""ViL model throughput per traversal: train-step and inference images/s, peak memory, and
where the train step's time goes (cell / projections / q,k,v + gates / conv / rest).

    python -m benchmarks.bench_model                     # every traversal, tiny, 128 px
    python -m benchmarks.bench_model --compile both      # eager and torch.compile
    python -m benchmarks.bench_model --quick             # CI: nano, 2 traversals, few steps

Precision: float32 on CPU, bfloat16 autocast on CUDA. A train step is forward, cross-entropy,
backward and an AdamW step on random images (synthetic data: the input pipeline is not
measured here).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

import vil
from benchmarks import breakdown, op_split
from benchmarks.common import (
    base_parser,
    measure,
    print_table,
    start,
    timing_defaults,
    write_json,
)

QUICK_TRAVERSALS = ("alternating", "quad")


def autocast_ctx(device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """bf16 autocast on CUDA, nothing on CPU (float32)."""
    if device.type == "cuda":
        return partial(torch.autocast, device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def make_steps(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, ctx):
    """(train_step, infer_step) closures over ``model`` (possibly compiled)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)

    def train_step() -> None:
        model.train()
        with ctx():
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def infer_step() -> None:
        model.eval()
        with torch.no_grad(), ctx():
            model(images)

    return train_step, infer_step


def bench_one(
    args, traversal: str, device: torch.device, compiled: bool, cell: str = "auto"
) -> dict[str, Any]:
    """Train and inference timings of one traversal in one mode; eager runs add a breakdown."""
    torch.manual_seed(0)
    model = vil.create_model(
        args.size, traversal, args.pooling, args.img_size, args.patch_size, args.num_classes,
        cell=cell,
    ).to(device)  # fmt: skip
    info = {"params": vil.count_params(model), "gflops_fwd_per_image": vil.count_flops(model) / 1e9}
    images = torch.randn(args.batch, 3, args.img_size, args.img_size, device=device)
    labels = torch.randint(0, args.num_classes, (args.batch,), device=device)
    if compiled:  # fresh dynamo caches: after 8 recompiles of the same code it runs eager
        torch._dynamo.reset()
    runner = torch.compile(model) if compiled else model
    ctx = autocast_ctx(device)
    train_step, infer_step = make_steps(runner, images, labels, ctx)
    first = time.perf_counter()
    train_step()  # first call: compilation when compiled
    info["first_step_s"] = time.perf_counter() - first
    train = measure(train_step, device, args.warmup, args.repeats)
    infer = measure(infer_step, device, args.warmup, args.repeats)
    row = {
        "traversal": traversal,
        "mode": ("compile" if compiled else "eager") + ("" if cell == "auto" else f" {cell}"),
        "cell": cell,
        **info,
        "train_images_per_s": args.batch / train.median_s,
        "infer_images_per_s": args.batch / infer.median_s,
        "train_images_per_cpu_s": args.batch / train.median_cpu_s,
        "train": train.as_dict(),
        "infer": infer.as_dict(),
    }
    if not compiled and args.breakdown:
        with breakdown.record_calls(model) as calls:
            model.train()
            with ctx():
                model(images)
        row["breakdown_train"] = breakdown.time_components(
            calls, train, device, True, ctx, args.warmup, args.repeats
        )
    if not compiled and args.op_split and device.type == "cpu":
        row["op_split_train"] = op_split.split(train_step)
    return row


def parse_args(argv: list[str] | None = None):
    p = base_parser(__doc__.splitlines()[0], "results/bench_model.json")
    p.add_argument("--size", default="tiny", choices=list(vil.SIZES))
    p.add_argument("--img-size", type=int, default=128)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--num-classes", type=int, default=100)
    p.add_argument("--pooling", default="bilateral_avg")
    p.add_argument("--batch", type=int, default=None, help="default: 32 on CPU, 256 on CUDA")
    p.add_argument("--traversals", nargs="+", default=None, help="default: all registered")
    p.add_argument("--compile", default="off", choices=("off", "on", "both"))
    p.add_argument("--no-breakdown", dest="breakdown", action="store_false")
    p.add_argument(
        "--op-split",
        action="store_true",
        help="CPU: one more train step timed operator by operator (op_split.py)",
    )
    p.add_argument(
        "--cells", nargs="+", default=["auto"],
        help="mLSTM cell forms to compare, e.g. auto kernels (mlstm-kernels' default kernel)",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.quick:
        args.size = "nano"
        args.traversals = args.traversals or list(QUICK_TRAVERSALS)
        args.batch = args.batch or 4
    timing_defaults(args)
    args.traversals = args.traversals or list(vil.TRAVERSALS.names())
    return args


def _label(row: dict[str, Any]) -> str:
    cell = row.get("cell", "auto")
    return row["traversal"] if cell == "auto" else f"{row['traversal']} ({cell})"


COLUMNS = ["traversal", "mode", "params M", "GFLOP/img", "train img/s", "train img/CPU-s",
           "infer img/s", "train peak MiB", "infer peak MiB"]  # fmt: skip


def _row(r: dict[str, Any]) -> list[Any]:
    return [r["traversal"], r["mode"], r["params"] / 1e6, r["gflops_fwd_per_image"],
            r["train_images_per_s"], r["train_images_per_cpu_s"], r["infer_images_per_s"],
            r["train"]["peak_mib"],
            r["infer"]["peak_mib"]]  # fmt: skip


def report(rows: list[dict[str, Any]], args) -> None:
    """Print the throughput table and the breakdown table."""
    title = f"ViL-{args.size} {args.img_size}px batch {args.batch}"
    print_table(f"{title}: throughput (median of {args.repeats}), peak memory", COLUMNS,
                [_row(r) for r in rows])  # fmt: skip
    print(f"Memory: {rows[0]['train']['memory_method']}. img/CPU-s: images per second of "
          "process CPU time (all threads), steadier than wall time on a shared CPU.")  # fmt: skip
    _report_op_split([r for r in rows if "op_split_train" in r], title)
    split = [r for r in rows if "breakdown_train" in r]
    if not split:
        return
    cols = [*breakdown.CATEGORIES, "rest"]
    print_table(
        f"{title}: train-step time split, % of the measured step",
        ["traversal", f"step s ({split[0]['breakdown_train']['clock']})", *cols],
        [
            [_label(r), r["breakdown_train"]["total_s"]]
            + [100 * r["breakdown_train"]["fraction"].get(c, 0.0) for c in cols]
            for r in split
        ],
    )
    print("Breakdown " + " ".join(breakdown.__doc__.split("\n\n")[1].split()))
    print("A negative 'rest' means the isolated replays ran slower than inside the step "
          "(noise on a shared CPU).")  # fmt: skip


def _report_op_split(rows: list[dict[str, Any]], title: str) -> None:
    if not rows:
        return
    print_table(
        f"{title}: one train step timed operator by operator (ms)",
        ["traversal", "step", "products", "products GFLOP/s", "other ops", "largest other ops"],
        [
            [
                _label(r),
                1e3 * sp["step_s"],
                1e3 * sp["products_s"],
                sp["products_gflops_per_s"],
                1e3 * sp["other_s"],
                ", ".join(
                    f"{k.removeprefix('aten.')} {1e3 * v:.0f}"
                    for k, v in sp["other_largest_s"].items()
                ),
            ]
            for r in rows
            for sp in [r["op_split_train"]]
        ],  # fmt: skip
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device, env = start(args)
    if args.batch is None:
        args.batch = 256 if device.type == "cuda" else 32
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    rows = []
    runs = [(t, m, c) for t in args.traversals for m in modes for c in args.cells]
    for traversal, compiled, cell in runs:
        rows.append(bench_one(args, traversal, device, compiled, cell))
        r = rows[-1]
        print(f"  {traversal:>20s} {r['mode']:>7s}: train {r['train_images_per_s']:.1f} "
              f"img/s, infer {r['infer_images_per_s']:.1f} img/s", flush=True)  # fmt: skip
    report(rows, args)
    precision = "bf16 autocast" if device.type == "cuda" else "fp32"
    payload = {"benchmark": "model", "environment": env, "precision": precision,
               "settings": vars(args), "results": rows}  # fmt: skip
    print(f"wrote {write_json(args.out, payload)}")
    return payload


if __name__ == "__main__":
    main()
