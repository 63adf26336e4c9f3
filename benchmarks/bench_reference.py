"""Against the field's own implementations, same settings, same machine, as ratios.

(a) the mLSTM cell vs ``mlstm-kernels`` (native PyTorch parallel / chunkwise kernels), and our
    mLSTM layer vs ``xlstm``'s mLSTMLayer (weights copied across), with numerics agreement;
(b) our alternating ViL train step vs the public NX-AI/vision-lstm v1 model, with the
    machine's matmul rate on the model's shapes and the bound it implies.

    python -m benchmarks.bench_reference --reference-path /tmp/vision-lstm
    python -m benchmarks.bench_reference --quick            # CI: one length, nano models

Peers are optional: a missing package or reference checkout is skipped with the reason.
Part (b) runs on the CPU in float32 (the reference has no autocast handling of its own).
"""

from __future__ import annotations

from typing import Any

import torch

import vil
from benchmarks import op_split, peers
from benchmarks import reference_model as refm
from benchmarks.bench_mlstm import make_inputs
from benchmarks.common import (
    base_parser,
    measure,
    print_table,
    start,
    timing_defaults,
    write_json,
)
from vil import mlstm as cell

GOAL_RATIO, GOAL_BOUND = 1.3, 0.9


def _fwd_bwd(fn, inputs: list[torch.Tensor], grad: torch.Tensor, **kw):
    def run() -> None:
        for t in inputs:
            t.grad = None
        fn(*inputs, **kw).backward(grad)

    return run


def cell_configs(args) -> list[tuple[int, int]]:
    """(batch, length) pairs: the model's own shape first, then --lengths at --cell-batch."""
    return [(args.batch, args.tokens)] + [(args.cell_batch, n) for n in args.lengths]


def bench_cells(args, device: torch.device) -> list[dict[str, Any]]:
    """Ours vs mlstm-kernels per shape and form: fwd+bwd ms, ratio, forward agreement."""
    mk, why = peers.try_import("mlstm_kernels.torch")
    rows = []
    for batch, length in cell_configs(args):
        inputs, grad = make_inputs(batch, 4, length, 96, device, torch.float32)
        with torch.no_grad():
            ref_out = cell.parallel(*inputs)
        for form, kernels in peers.KERNEL_PEERS.items():
            kw = {"chunk_size": args.chunk_size} if form == "chunkwise" else {}
            ours = measure(_fwd_bwd(getattr(cell, form), inputs, grad, **kw), device,
                           args.warmup, args.repeats, memory=False)  # fmt: skip
            for name in kernels:
                row = {"batch": batch, "length": length, "form": form,
                       "ours_ms": ours.median_s * 1e3, "peer": name}  # fmt: skip
                if mk is None or (form == "chunkwise" and length % args.chunk_size):
                    row["skipped"] = why or f"S={length} not divisible by chunk {args.chunk_size}"
                    rows.append(row)
                    continue
                rows.append(_peer_row(row, name, kw, inputs, grad, ref_out, device, args))
    return rows


def _peer_row(row, name, kw, inputs, grad, ref_out, device, args) -> dict[str, Any]:
    fn = peers.kernel_fn(name)
    peer_fn = lambda q, k, v, i, f: fn(q=q, k=k, v=v, i=i, f=f, **kw)
    t = measure(_fwd_bwd(peer_fn, inputs, grad), device, args.warmup, args.repeats, memory=False)
    with torch.no_grad():
        row["max_rel_diff_vs_our_parallel"] = peers.max_rel_diff(ref_out, peer_fn(*inputs))
    row["peer_ms"] = t.median_s * 1e3
    row["speedup_ours"] = t.median_s / (row["ours_ms"] / 1e3)
    return row


def bench_layer(args, device: torch.device) -> dict[str, Any]:
    """Our mLSTM layer vs xlstm's mLSTMLayer (same weights) at the ViL shape, fwd+bwd."""
    dim, length = vil.SIZES[args.size][0], args.tokens
    mod, why = peers.try_import("xlstm.blocks.mlstm.layer")
    row: dict[str, Any] = {"dim": dim, "length": length, "batch": args.batch}
    if mod is None:
        return {**row, "skipped": why}
    theirs = peers.xlstm_layer(dim, length).to(device)
    peers.perturb_(theirs)
    ours = peers.our_layer(dim, length).to(device)
    peers.copy_xlstm_into_ours(theirs, ours)
    x = torch.randn(args.batch, length, dim, device=device, requires_grad=True)
    grad = torch.randn(args.batch, length, dim, device=device)
    with torch.no_grad():
        row["max_rel_diff"] = peers.max_rel_diff(ours(x), theirs(x))
    for name, layer in (("ours", ours), ("xlstm", theirs)):
        t = measure(lambda layer=layer: layer(x).backward(grad), device, args.warmup,
                    args.repeats, memory=False)  # fmt: skip
        row[f"{name}_ms"] = t.median_s * 1e3
    row["speedup_ours"] = row["xlstm_ms"] / row["ours_ms"]
    return row


def bench_models(args) -> dict[str, Any]:
    """Train-step images/s of ours vs the reference (interleaved rounds), matmul bound."""
    ref_cls, why = refm.load_reference(args.reference_path)
    c = {"img": args.img_size, "patch": 16, "classes": 100}
    out: dict[str, Any] = {"size": args.size, "batch": args.batch, **c}
    dim = vil.SIZES[args.size][0]
    rates = refm.matmul_rates(args.batch, dim, (c["img"] // 16) ** 2, 4, args.repeats)
    out["matmul"] = rates
    ours = vil.create_model(args.size, "alternating", "bilateral_avg", c["img"], 16, 100)
    out["bound"] = refm.matmul_bound(ours, rates)
    steps = {"ours": refm.train_step_fn(ours, args.batch, c["img"], 100)}
    if ref_cls is None:
        out["reference_skipped"] = why
    else:
        _, ref = refm.build_pair(ref_cls, args.size, c["img"], 16, 100)
        out["params"] = {"ours": vil.count_params(ours), "reference": vil.count_params(ref)}
        steps["reference"] = refm.train_step_fn(ref, args.batch, c["img"], 100)
    timings = refm.interleaved(steps, args.rounds, args.repeats)
    for name, t in timings.items():
        out[name] = {**t.as_dict(), "images_per_s": args.batch / t.median_s,
                     "images_per_cpu_s": args.batch / t.median_cpu_s}  # fmt: skip
    ips = out["ours"]["images_per_s"]
    out["ours"]["gflops_per_s"] = ips * out["bound"]["train_gflop_per_image"]
    out["ours"]["op_split"] = op_split.split(steps["ours"])
    out["bound"]["step_s"] = args.batch / out["bound"]["bound_images_per_s"]
    out["fraction_of_bound"] = ips / out["bound"]["bound_images_per_s"]
    if "reference" in out:
        out["speedup_vs_reference"] = ips / out["reference"]["images_per_s"]
        out["speedup_vs_reference_cpu_time"] = (
            out["ours"]["images_per_cpu_s"] / out["reference"]["images_per_cpu_s"]
        )
    return out


def report(cells: list[dict], layer: dict, model: dict, args) -> None:
    """Print the three comparisons and the goals."""
    print_table(
        "(a) mLSTM cell fwd+bwd, NH=4 DH=96 fp32 vs mlstm-kernels (peer/ours > 1: ours faster)",
        [
            "B",
            "S",
            "form",
            "mlstm-kernels kernel",
            "ours ms",
            "peer ms",
            "peer/ours",
            "max rel diff",
        ],
        [
            [
                r["batch"],
                r["length"],
                r["form"],
                r["peer"],
                r["ours_ms"],
                r.get("peer_ms", "-"),
                r.get("speedup_ours", r.get("skipped", "-")),
                r.get("max_rel_diff_vs_our_parallel", "-"),
            ]
            for r in cells
        ],  # fmt: skip
    )
    print("max rel diff = max|ours_parallel - peer| / max|ours_parallel| on the forward output.")
    if "skipped" in layer:
        print(f"(a) layer vs xlstm: skipped: {layer['skipped']}")
    else:
        print(f"(a) mLSTM layer fwd+bwd (B={layer['batch']}, S={layer['length']}, dim "
              f"{layer['dim']}): ours {layer['ours_ms']:.1f} ms, xlstm {layer['xlstm_ms']:.1f} "
              f"ms, xlstm/ours {layer['speedup_ours']:.2f}x, max rel diff "
              f"{layer['max_rel_diff']:.1e} (same weights)")  # fmt: skip
    print_table(
        f"(b) matmul rate on the model's shapes (forward products, fp32, B={args.batch})",
        ["product", "GFLOP", "GFLOP/s"],
        [[n, r["gflop"], r["gflops_per_s"]] for n, r in model["matmul"].items()],
    )
    _report_models(model)


def _report_models(m: dict[str, Any]) -> None:
    b, o = m["bound"], m["ours"]
    gf = b["train_gflop_per_image"]
    rows = [["ours (vil, alternating)", o["images_per_s"], o["images_per_cpu_s"],
             o["images_per_s"] * gf, o["peak_mib"]]]  # fmt: skip
    if "reference" in m:
        r = m["reference"]
        rows.append(["NX-AI/vision-lstm v1", r["images_per_s"], r["images_per_cpu_s"],
                     r["images_per_s"] * gf, r["peak_mib"]])  # fmt: skip
    rows.append(["matmul bound", b["bound_images_per_s"], "-", b["bound_gflops_per_s"], "-"])
    print_table(
        f"(b) ViL-{m['size']} {m['img']}px train step, batch {m['batch']}, fp32 "
        f"({gf:.2f} GFLOP/image = 3 x vil.count_flops)",
        ["model", "images/s", "images/CPU-s", "GFLOP/s", "peak MiB"],
        rows,
    )
    if "reference" in m:
        ok = "MET" if m["speedup_vs_reference"] >= GOAL_RATIO else "NOT MET"
        print(f"ours / reference: {m['speedup_vs_reference']:.2f}x wall time, "
              f"{m['speedup_vs_reference_cpu_time']:.2f}x CPU time   "
              f"(goal >= {GOAL_RATIO}x: {ok})")  # fmt: skip
    else:
        print(f"reference skipped: {m['reference_skipped']}")
    ok = "MET" if m["fraction_of_bound"] >= GOAL_BOUND else "NOT MET"
    print(f"ours / matmul bound: {100 * m['fraction_of_bound']:.0f}%   "
          f"(goal: within 10% of the bound: {ok})")  # fmt: skip
    print("bound: all 3 x count_flops FLOPs at the measured forward-product rates (proj_up, "
          "proj_down, cell); FLOPs of other products at the best of those rates.")  # fmt: skip
    _report_split(o["op_split"], b["step_s"])


def _report_split(sp: dict[str, Any], bound_s: float) -> None:
    """Our step's products vs the rest, against the bound's step time."""
    others = ", ".join(f"{k.removeprefix('aten.').removesuffix('.default')} {1e3 * v:.0f}"
                       for k, v in sp["other_largest_s"].items())  # fmt: skip
    print(f"where our step's time goes (one step timed operator by operator: "
          f"{1e3 * sp['step_s']:.0f} ms): matrix products {1e3 * sp['products_s']:.0f} ms "
          f"({sp['products_gflop']:.1f} GFLOP as run, zero blocks included, at "
          f"{sp['products_gflops_per_s']:.0f} GFLOP/s); other operators "
          f"{1e3 * sp['other_s']:.0f} ms (largest, ms: {others}); Python and the timer "
          f"{1e3 * (sp['step_s'] - sp['products_s'] - sp['other_s']):.0f} ms. The bound's "
          f"step: {1e3 * bound_s:.0f} ms: our products alone would be "
          f"{100 * bound_s / sp['products_s']:.0f}% of the bound.")  # fmt: skip


def parse_args(argv: list[str] | None = None):
    p = base_parser(__doc__.splitlines()[0], "results/bench_reference.json")
    p.add_argument("--reference-path", default=None, help=f"or env {refm.ENV_VAR}")
    p.add_argument("--size", default="tiny", choices=list(vil.SIZES))
    p.add_argument("--img-size", type=int, default=128)
    p.add_argument("--batch", type=int, default=32, help="model and layer batch")
    p.add_argument("--cell-batch", type=int, default=2, help="cell batch for --lengths")
    p.add_argument("--lengths", type=int, nargs="+", default=None, help="cell lengths")
    p.add_argument("--chunk-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of model timing")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.batch, args.rounds = "nano", 4, 1
        args.lengths = args.lengths or [128]
    args.lengths = args.lengths or [64, 256, 729, 1024]
    args.tokens = (args.img_size // 16) ** 2
    timing_defaults(args)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device, env = start(args)
    cells = bench_cells(args, device)
    layer = bench_layer(args, device)
    model = bench_models(args)
    report(cells, layer, model, args)
    payload = {"benchmark": "reference", "environment": env, "settings": vars(args),
               "cells": cells, "layer": layer, "model": model}  # fmt: skip
    print(f"wrote {write_json(args.out, payload)}")
    return payload


if __name__ == "__main__":
    main()
