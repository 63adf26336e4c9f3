"""mLSTM cell scaling: parallel vs chunkwise vs recurrent, forward + backward, per length.

    python -m benchmarks.bench_mlstm                        # lengths 64 .. 4096 and 729
    python -m benchmarks.bench_mlstm --quick                # CI: lengths 64, 128, 256

Shapes are ViL-T-like: batch 2, 4 heads, head dim 96 (inner width 384). The recurrent form
is a Python loop over tokens and is only run up to ``--recurrent-max-len`` (default 512).
For each length the table also shows which form ``mlstm(form="auto")`` picks
(``AUTO_CHUNK_THRESHOLD``) and whether that is the faster of parallel / chunkwise here.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.common import (
    base_parser,
    measure,
    print_table,
    start,
    timing_defaults,
    write_json,
)
from vil import mlstm as cell

FULL_LENGTHS = (64, 128, 256, 512, 729, 1024, 2048, 4096)
QUICK_LENGTHS = (64, 128, 256)
FORMS = ("parallel", "chunkwise", "recurrent")


def make_inputs(
    batch: int, heads: int, length: int, head_dim: int, device: torch.device, dtype: torch.dtype
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """q, k, v (B, NH, S, DH) and gate pre-activations (B, NH, S) in ViL's init ranges, all
    requiring grad, plus a fixed output gradient."""
    g = torch.Generator().manual_seed(length)
    shape = (batch, heads, length, head_dim)
    q, k, v = (torch.randn(shape, generator=g) for _ in range(3))
    igate = torch.randn(batch, heads, length, generator=g) * 0.1
    fgate = 3.0 + 3.0 * torch.rand(batch, heads, length, generator=g)
    inputs = [t.to(device, dtype).requires_grad_(True) for t in (q, k, v, igate, fgate)]
    return inputs, torch.randn(shape, generator=g).to(device, dtype)


def fwd_bwd(form: str, inputs: list[torch.Tensor], grad: torch.Tensor, chunk: int):
    """A closure running one forward + backward of ``form``."""

    def run() -> None:
        for t in inputs:
            t.grad = None
        out = cell.mlstm(*inputs, form=form, chunk_size=chunk)
        out.backward(grad)

    return run


def auto_form(length: int) -> str:
    """The form ``mlstm(form="auto")`` dispatches to at this length."""
    return "chunkwise" if length > cell.AUTO_CHUNK_THRESHOLD else "parallel"


def bench_length(args, length: int, device: torch.device) -> dict[str, Any]:
    """Time every form at one length (recurrent only up to the cap)."""
    dtype = getattr(torch, args.dtype)
    inputs, grad = make_inputs(args.batch, args.heads, length, args.head_dim, device, dtype)
    row: dict[str, Any] = {"length": length, "auto_picks": auto_form(length)}
    for form in FORMS:
        if form == "recurrent" and length > args.recurrent_max_len:
            row[form] = None  # skipped: too slow (Python loop over tokens)
            continue
        if form == "parallel" and length > args.parallel_max_len:
            row[form] = None
            continue
        t = measure(fwd_bwd(form, inputs, grad, args.chunk_size), device, args.warmup, args.repeats)
        row[form] = t.as_dict()
    timed = {f: row[f]["median_s"] for f in ("parallel", "chunkwise") if row[f]}
    row["fastest_of_parallel_chunkwise"] = min(timed, key=timed.get) if timed else None
    row["auto_is_fastest"] = (
        row["fastest_of_parallel_chunkwise"] == row["auto_picks"] if len(timed) == 2 else None
    )
    # within 10% of the faster form counts as a good pick (timings on a shared CPU are noisy)
    row["auto_within_10pct"] = (
        timed[row["auto_picks"]] <= 1.1 * min(timed.values()) if len(timed) == 2 else None
    )
    return row


def scaling_ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """time(L) / time(L/4) for the largest L with L/4 also measured: ~4x linear, ~16x quadratic."""
    by_len = {r["length"]: r for r in rows}
    out = {}
    for form in FORMS:
        lengths = sorted(n for n, r in by_len.items() if r[form])
        pairs = [(n, n // 4) for n in reversed(lengths) if n % 4 == 0 and n // 4 in lengths]
        if pairs:
            hi, lo = pairs[0]
            a, b = by_len[hi][form], by_len[lo][form]
            out[form] = {"long": hi, "short": lo, "ratio": a["median_s"] / b["median_s"]}
            if a.get("median_cpu_s") and b.get("median_cpu_s"):  # steadier on a shared CPU
                out[form]["cpu_ratio"] = a["median_cpu_s"] / b["median_cpu_s"]
    return out


def report(rows: list[dict[str, Any]], ratios: dict[str, Any], args) -> None:
    """Print the per-length table and the scaling ratios."""

    def cell_of(r: dict[str, Any], form: str, key: str, scale: float) -> Any:
        return r[form][key] * scale if r[form] else "skipped"

    print_table(
        f"mLSTM cell fwd+bwd, B={args.batch} NH={args.heads} DH={args.head_dim} "
        f"{args.dtype}, chunk {args.chunk_size} (median of {args.repeats})",
        ["S"]
        + [f"{f} ms" for f in FORMS]
        + [f"{f} peak MiB" for f in FORMS]
        + ["auto picks", "faster", "auto within 10%"],
        [
            [r["length"]]
            + [cell_of(r, f, "median_s", 1e3) for f in FORMS]
            + [cell_of(r, f, "peak_mib", 1.0) for f in FORMS]
            + [r["auto_picks"], r["fastest_of_parallel_chunkwise"], r["auto_within_10pct"]]
            for r in rows
        ],
    )
    print(
        f"recurrent runs only up to S={args.recurrent_max_len} (a Python loop over tokens: "
        f"slow); parallel up to S={args.parallel_max_len}."
    )
    for form, r in ratios.items():
        expect = {"parallel": "quadratic ~16x", "chunkwise": "linear: goal <= ~5x"}.get(form, "")
        cpu = f", process CPU time {r['cpu_ratio']:.2f}x" if "cpu_ratio" in r else ""
        print(
            f"time(S={r['long']}) / time(S={r['short']}) {form:>9s}: wall {r['ratio']:.2f}x"
            f"{cpu}  {expect}"
        )


def parse_args(argv: list[str] | None = None):
    p = base_parser(__doc__.splitlines()[0], "results/bench_mlstm.json")
    p.add_argument("--lengths", type=int, nargs="+", default=None)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=96)
    p.add_argument("--chunk-size", type=int, default=cell.DEFAULT_CHUNK)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--recurrent-max-len", type=int, default=512)
    p.add_argument("--parallel-max-len", type=int, default=4096)
    args = p.parse_args(argv)
    args.lengths = args.lengths or list(QUICK_LENGTHS if args.quick else FULL_LENGTHS)
    if args.quick:
        args.recurrent_max_len = min(args.recurrent_max_len, 128)
    return timing_defaults(args)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device, env = start(args)
    rows = []
    for length in sorted(args.lengths):
        rows.append(bench_length(args, length, device))
        print(f"  S={length} done", flush=True)
    ratios = scaling_ratios(rows)
    report(rows, ratios, args)
    payload = {
        "benchmark": "mlstm",
        "environment": env,
        "settings": vars(args),
        "auto_chunk_threshold": cell.AUTO_CHUNK_THRESHOLD,
        "results": rows,
        "scaling_ratios": ratios,
    }
    print(f"wrote {write_json(args.out, payload)}")
    return payload


if __name__ == "__main__":
    main()
