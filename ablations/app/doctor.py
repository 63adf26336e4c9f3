"""``vil-ablate doctor``: check and measure the whole training path on the machine at hand.

Prints a table per check, writes JSON (``--out``) and a Markdown section for
results/benchmarks.md (``--md``), headed "GPU figures" only when measured on a GPU:

1. every traversal at ViL-T / 128 px: the real train step (compile on CUDA, bf16 autocast)
   on one fixed batch: finite, decreasing loss; first-step (compile) time; images/s; peak
   memory;
2. the mlstm-kernels backend against our parallel form in bf16 (outputs, gradients, stated
   tolerance) and its speed-up;
3. a 2-process torchrun DDP run (NCCL where 2+ GPUs; gloo on CPU in reduced mode);
4. the loader's images/s from the uint8 cache with the paper's augmentation at this
   machine's number of workers, against the fastest traversal's train images/s: a verdict.

On CPU it runs the same checks in a reduced mode (ViL-nano, 16 px, tiny batch, eager), which
CI runs. Time is bounded by ``--traversals``, ``--steps``, ``--repeats``, ``--batch`` and
``--loader-seconds``; nothing asserts a time.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import torch

import vil
from ablations.app import doctor_checks as checks
from ablations.app.doctor_args import add_arguments
from ablations.schema.catalog import load_catalog
from ablations.schema.device import resolve_device
from ablations.schema.files import write_json
from ablations.train.instruments import environment, header_line, print_table

FULL = {"size": "tiny", "img_size": 128, "patch_size": 16, "batch": 256, "steps": 10,
        "repeats": 5, "cell_shape": (32, 4, 64, 96), "loader_images": 2000}  # fmt: skip
REDUCED = {"size": "nano", "img_size": 16, "patch_size": 4, "batch": 8, "steps": 4,
           "repeats": 1, "cell_shape": (2, 2, 17, 16), "loader_images": 60}  # fmt: skip


def options(args: argparse.Namespace) -> argparse.Namespace:
    """Fill unset flags from FULL or REDUCED (reduced by default when there is no GPU)."""

    device = resolve_device(args.device)
    if args.reduced is None:
        args.reduced = device.type == "cpu"
    for key, value in (REDUCED if args.reduced else FULL).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.loader_seconds is None:
        args.loader_seconds = 1.0 if args.reduced else 10.0
    args.out = args.out or str(Path(args.results) / "doctor.json")
    args.md = args.md or str(Path(args.results) / "doctor.md")
    if not args.traversals:
        args.traversals = list(vil.TRAVERSALS.names())
    args.resolved_device = device
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every check; returns the JSON payload."""

    base = load_catalog().protocol("paper")
    rows = []
    for name in args.traversals:
        rows.append(checks.check_traversal(base, args, name))
        r = rows[-1]
        print(f"  {name:>18}: loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}, "
              f"{r['train_img_per_s']:.0f} img/s", flush=True)  # fmt: skip
    kernels = checks.check_kernels(args, args.resolved_device)
    ddp = checks.check_ddp(args) if args.ddp else {"skipped": "--no-ddp"}
    fastest = max(r["train_img_per_s"] for r in rows)
    loader = checks.check_loader(args, fastest)
    return {"benchmark": "doctor", "environment": environment(args.resolved_device),
            "reduced": args.reduced, "settings": _settings(args), "traversals": rows,
            "kernels": kernels, "ddp": ddp, "loader": loader}  # fmt: skip


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("size", "img_size", "patch_size", "batch", "steps", "repeats", "compile", "precision",
            "workers", "loader_seconds", "loader_images", "cell_shape", "traversals")  # fmt: skip
    return {k: getattr(args, k) for k in keys}


TRAVERSAL_COLUMNS = ["traversal", "precision", "compile", "first step s", "loss first",
                     "loss last", "finite+decreasing", "train img/s", "peak MiB"]  # fmt: skip


def _tables(p: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, columns, rows) of every table, for the console and the Markdown section."""
    s = p["settings"]
    t = [[r["traversal"], r["precision"], r["compile"], r["first_step_s"], r["loss_first"],
          r["loss_last"], "yes" if r["ok"] else "NO", r["train_img_per_s"], r["peak_mib"]]
         for r in p["traversals"]]  # fmt: skip
    title = f"ViL-{s['size']} {s['img_size']} px, batch {s['batch']}, {s['steps']} steps"
    k = p["kernels"]
    if "skipped" in k:
        krows = [["skipped", k["skipped"], "", ""]]
    else:
        worst = max(v for n, v in k["rel_errors"].items() if n.startswith("grad"))
        krows = [[f"{k['rel_errors']['output']:.2e} (tol {k['tolerance']['output']})",
                  f"{worst:.2e} (tol {k['tolerance']['grad']})", "yes" if k["ok"] else "NO",
                  k["speedup"]]]  # fmt: skip
    d = p["ddp"]
    drows = (
        [["skipped", d["skipped"], "", ""]]
        if "skipped" in d
        else [
            [
                d.get("backend", "?"),
                "yes" if d["ok"] else "NO",
                d.get("steps_done", ""),
                d.get("error")
                or f"{d.get('img_per_s', math.nan):.0f} img/s, {d.get('wall_s', math.nan):.0f} s",
            ]
        ]
    )
    ld = p["loader"]
    lrows = [[ld["workers"], ld["img_per_s"], ld["per_worker_img_per_s"],
              ld["device_aug_img_per_s"], ld["model_img_per_s"], ld["verdict"]]]  # fmt: skip
    return [
        (f"{title}: fixed-batch train steps", TRAVERSAL_COLUMNS, t),
        (f"mlstm-kernels vs our parallel form, bf16, BHSD {k.get('shape_BHSD', '')}",
         ["output rel err", "worst grad rel err", "within tol", "speed-up"], krows),
        ("DDP: torchrun --nproc_per_node 2", ["backend", "ok", "steps", "note"], drows),
        (f"loader: uint8 cache + paper augmentation, {ld['img_size']} px",
         ["workers", "img/s", "img/s per worker", "augment_on=device img/s",
          "model img/s (fastest)", "verdict"], lrows),
    ]  # fmt: skip


def markdown(p: dict[str, Any]) -> str:
    """A section for results/benchmarks.md; headed GPU figures only when measured on one."""
    env = p["environment"]
    gpu = env["device"].startswith("cuda")
    kind = "GPU figures" if gpu else "CPU figures (reduced mode, not GPU figures)"
    lines = [f"## vil-ablate doctor: {kind}", "", f"`{header_line(env)}`", ""]
    for title, cols, rows in _tables(p):
        lines += [f"**{title}**", "", "| " + " | ".join(cols) + " |",
                  "|" + "---|" * len(cols)]  # fmt: skip
        lines += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "-" if v != v else (f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}")
    return str(v)


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run the doctor with parsed ``args``; print, write JSON and Markdown; return the payload."""
    if args.ddp_worker:
        checks.ddp_worker(Path(args.ddp_worker), args.device)
        return {}
    args = options(args)
    torch.manual_seed(0)
    print(header_line(environment(args.resolved_device)))
    payload = run(args)
    for title, cols, rows in _tables(payload):
        print_table(title, cols, rows)
    print(f"wrote {write_json(args.out, payload)}")
    md = Path(args.md)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(markdown(payload))
    print(f"wrote {md} (a section for results/benchmarks.md)")
    return payload


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    main(parser.parse_args())
