"""The checks of ``vil-ablate doctor`` (ablations/app/doctor.py): each returns a plain dict row.

- ``check_traversal``: the real train step (ablations.train.steps.train_step: compile on
  CUDA, bf16 autocast, clipping, AdamW) repeated on one fixed batch: finite and decreasing
  loss, first-step (compile) time, images/s, peak memory.
- ``check_kernels``: the mlstm-kernels backend against our parallel form in bf16 (outputs
  and input gradients, relative max error vs ``KERNEL_TOL``) and its fwd+bwd speed-up.
- ``check_ddp``: a 2-process torchrun of ``train()`` (NCCL on 2+ GPUs, gloo on CPU).
- ``check_loader``: images/s of the uint8 cache with the paper's augmentation through a
  DataLoader with persistent workers, against the model's train images/s, with a verdict.
Nothing here asserts a time; figures are reported as measured.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ablations.data import DataConfig, build_datasets, prepare_cache
from ablations.data.deviceaug import DeviceAugment
from ablations.data.jpegs import make_jpegs
from ablations.schema.catalog import load_catalog
from ablations.schema.config import RunConfig, apply
from ablations.train import train
from ablations.train.instruments import measure, sync
from ablations.train.measure import fixed_batch, step_parts
from ablations.train.runtime import init_distributed
from ablations.train.steps import train_step
from vil import kernels, mlstm

# bf16 keeps 8 mantissa bits (eps 2^-8 = 0.0039); the two forms round in different places.
KERNEL_TOL = {"output": 2e-2, "grad": 5e-2}  # relative max error, kernels vs our parallel


def _rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.double()
    return float((a.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def doctor_config(base: RunConfig, opts: Any, traversal: str) -> RunConfig:
    """The paper protocol at the doctor's size, no mixing, a flat lr of 1e-3 (overfit check)."""
    over = {
        "model": {"size": opts.size, "traversal": traversal, "patch_size": opts.patch_size},
        "data": {"img_size": opts.img_size, "mixup_prob": 0.0, "cutmix_prob": 0.0},
        "train": {"batch_size": opts.batch, "lr": 1024e-3 / opts.batch, "warmup_epochs": 0.0,
                  "device": opts.device, "compile": opts.compile, "micro_batch": None,
                  "precision": getattr(opts, "precision", "auto")},
    }  # fmt: skip
    return apply(base, over, "doctor")


def check_traversal(base: RunConfig, opts: Any, traversal: str) -> dict[str, Any]:
    """Train ``opts.steps`` steps on one fixed batch, then time ``opts.repeats`` more."""
    cfg = doctor_config(base, opts, traversal)
    torch.compiler.reset()  # fresh compile caches per traversal (recompile limits)
    parts = step_parts(cfg)
    images, labels = fixed_batch(cfg, opts.batch, parts.rt.device)
    losses = []

    def step() -> None:
        losses.append(train_step(parts, images, labels, cfg, len(losses)))

    t = time.perf_counter()
    step()
    sync(parts.rt.device)
    first_s = time.perf_counter() - t
    for _ in range(opts.steps - 1):
        step()
    timing = measure(step, parts.rt.device, warmup=0, repeats=opts.repeats)
    values = torch.stack(losses).tolist()  # one read at the end: no sync inside the steps
    finite = all(math.isfinite(v) for v in values)
    return {
        "traversal": traversal, "device": str(parts.rt.device), "precision": parts.rt.precision,
        "compile": parts.rt.compile, "first_step_s": first_s, "loss_first": values[0],
        "loss_last": values[-1], "losses": values,
        "ok": finite and values[-1] < values[0],
        "train_img_per_s": opts.batch / timing.median_s, "peak_mib": timing.peak_mib,
        "memory_method": timing.memory_method,
    }  # fmt: skip


def _cell_inputs(shape: tuple[int, int, int, int], device: torch.device) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    B, NH, S, DH = shape
    q, k, v = (torch.randn(B, NH, S, DH, generator=g) for _ in range(3))
    i = torch.randn(B, NH, S, generator=g)
    f = torch.randn(B, NH, S, generator=g) + 3.0  # forget gates mostly open, as trained
    return [t.to(device, torch.bfloat16) for t in (q, k, v, i, f)]


def _fwd_bwd(fn, inputs: list[torch.Tensor], w: torch.Tensor):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    (out.float() * w).sum().backward()
    return out.detach(), [x.grad for x in leaves]


def check_kernels(opts: Any, device: torch.device) -> dict[str, Any]:
    """mlstm-kernels (``model.cell=kernels``) against our parallel form, bf16 inputs."""

    if not kernels.available():
        return {"skipped": f"mlstm-kernels not installed: {kernels.INSTALL_HINT}"}
    inputs = _cell_inputs(opts.cell_shape, device)
    w = torch.randn(inputs[0].shape, generator=torch.Generator().manual_seed(1)).to(device)
    ours_fn = mlstm.parallel

    def theirs_fn(*xs: torch.Tensor) -> torch.Tensor:
        return mlstm.mlstm(*xs, form="kernels")

    try:
        ours, ours_g = _fwd_bwd(ours_fn, inputs, w)
        theirs, theirs_g = _fwd_bwd(theirs_fn, inputs, w)
    except (RuntimeError, NotImplementedError, ValueError) as e:  # e.g. no bf16 kernel here
        return {"skipped": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    errs = {"output": _rel_err(theirs, ours)}
    pairs = zip("qkvif", theirs_g, ours_g, strict=True)
    errs.update({f"grad_{n}": _rel_err(a, b) for n, a, b in pairs})
    t_ours = measure(lambda: _fwd_bwd(ours_fn, inputs, w), device, 1, opts.repeats, False)
    t_theirs = measure(lambda: _fwd_bwd(theirs_fn, inputs, w), device, 1, opts.repeats, False)
    ok = errs["output"] <= KERNEL_TOL["output"] and all(
        v <= KERNEL_TOL["grad"] for k, v in errs.items() if k.startswith("grad")
    )
    return {
        "shape_BHSD": list(opts.cell_shape), "dtype": "bfloat16", "device": str(device),
        "rel_errors": errs, "tolerance": KERNEL_TOL, "ok": ok,
        "ours_fwd_bwd_s": t_ours.median_s, "kernels_fwd_bwd_s": t_theirs.median_s,
        "speedup": t_ours.median_s / t_theirs.median_s,
    }  # fmt: skip


def check_ddp(opts: Any, timeout_s: float = 300.0) -> dict[str, Any]:
    """``torchrun --nproc_per_node 2`` of a short train(): NCCL where 2+ GPUs, else gloo."""
    gpus = torch.cuda.device_count()
    if gpus == 1:  # (on a CUDA machine torch.distributed uses NCCL, one device per rank)
        return {"skipped": "one GPU: DDP needs 2+ (run the doctor on a multi-GPU node)"}
    with tempfile.TemporaryDirectory(prefix="doctor_ddp_") as tmp:
        out = Path(tmp) / "ddp.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "ablations.app.doctor", "--ddp-worker", str(out),
               "--device", "cpu" if gpus < 2 else "cuda"]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "DOCTOR_RUN_DIR": tmp}  # one run folder
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timed out after {timeout_s:.0f} s"}
        wall = time.perf_counter() - t
        if proc.returncode or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"ok": False, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
        res = json.loads(out.read_text())
    ok = res["state"] == "TRUNCATED" and res["world_size"] == 2  # max_steps: 4 of an epoch
    return {"ok": ok, "backend": "nccl" if gpus >= 2 else "gloo", "wall_s": wall, **res}


def ddp_worker(out: Path, device: str) -> None:
    """One rank of check_ddp: a few steps of the smoke protocol under torchrun."""

    init_distributed()
    cat = load_catalog()
    train_over = {
        "device": device,
        "log_every": 2,
        "max_steps": 4,
        "batch_size": 16,
        "micro_batch": 4,
    }  # 2 micro-batches per rank: DDP's no_sync path too
    layer = {"data": {"img_size": 16}, "train": train_over}
    cfg = cat.experiment("table2").config_for(
        cat.protocol("smoke"), "alternating", 0, final=("doctor", layer)
    )
    with tempfile.TemporaryDirectory(prefix="doctor_rank_") as tmp:
        run_dir = Path(os.environ.get("DOCTOR_RUN_DIR", tmp))
        result = train(cfg, run_dir / "run")
    if int(os.environ.get("RANK", 0)) == 0:
        keep = ("state", "world_size", "steps_done", "img_per_s", "top1", "val_loss", "device")
        record = result.to_dict()
        out.write_text(json.dumps({k: record.get(k) for k in keep}))


def time_loader(dataset: Any, batch: int, workers: int, seconds: float) -> dict[str, Any]:
    """Images/s of a DataLoader with persistent, prefetching workers, after one warm batch."""
    from torch.utils.data import DataLoader

    opts = {"persistent_workers": True, "prefetch_factor": 4} if workers else {}
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True,
                        num_workers=workers, **opts)  # fmt: skip
    stream = (batch for _ in iter(int, 1) for batch in loader)  # endless: epochs back to back
    next(stream)  # workers started, first batches in flight
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds or n == 0:
        n += len(next(stream)[0])
    return {"img_per_s": n / (time.perf_counter() - t), "images": n, "workers": workers}


def loader_verdict(loader_ips: float, workers: int, model_ips: float, cores: int) -> str:
    """Whether ``workers`` loader processes feed ``model_ips``; else how many would."""
    if loader_ips >= model_ips:
        return f"the loader keeps up ({loader_ips:.0f} >= {model_ips:.0f} img/s)"
    per_worker = loader_ips / max(workers, 1)
    need = math.ceil(model_ips / max(per_worker, 1e-9))
    if need <= cores:
        return f"needs {need} workers (data.num_workers={need}; {per_worker:.0f} img/s each)"
    return (f"needs GPU-side augmentation (data.augment_on=device): {cores} cores x "
            f"{per_worker:.0f} img/s per worker "
            f"< {model_ips:.0f} img/s")  # fmt: skip


def time_device_augment(opts: Any, stored: int) -> float:
    """Images/s of ``data.augment_on=device`` (DeviceAugment) on the training device."""

    device = opts.resolved_device
    images = torch.randint(0, 256, (opts.batch, 3, stored, stored), dtype=torch.uint8)
    images, aug = images.to(device), DeviceAugment(opts.img_size)
    return opts.batch / measure(lambda: aug(images), device, 1, opts.repeats, False).median_s


def check_loader(opts: Any, model_ips: float) -> dict[str, Any]:
    """The uint8 cache of generated JPEGs with the paper's augmentation, ``opts.workers``
    persistent workers, against the fastest traversal's train images/s."""

    with tempfile.TemporaryDirectory(prefix="doctor_data_") as tmp:
        root = make_jpegs(Path(tmp) / "jpegs", opts.loader_images, 10)
        cfg = DataConfig(dataset="imagefolder", root=str(root), img_size=opts.img_size,
                         cache_dir=str(Path(tmp) / "cache"), augment="paper")  # fmt: skip
        prepare_cache(cfg, progress=False)
        train_set = build_datasets(cfg).train
        batch = min(opts.batch, len(train_set))
        res = time_loader(train_set, batch, opts.workers, opts.loader_seconds)
    cores = os.cpu_count() or 1
    res["device_aug_img_per_s"] = time_device_augment(opts, cfg.stored_size)
    res.update(
        model_img_per_s=model_ips,
        cores=cores,
        batch=batch,
        img_size=opts.img_size,
        per_worker_img_per_s=res["img_per_s"] / max(opts.workers, 1),
        verdict=loader_verdict(res["img_per_s"], opts.workers, model_ips, cores),
    )
    return res
