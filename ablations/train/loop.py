"""``train(config, run_dir) -> result``: one run of the paper's protocol, resumable.

Plain PyTorch: AdamW (lr x batch/1024, no decay on biases/norms/skip/pos-embed/CLS),
per-step linear warm-up then cosine, grad-norm clipping, Mixup/CutMix soft targets, bf16
autocast and torch.compile on CUDA, DDP when torch.distributed is initialised. Global RNGs
are re-seeded from (seed, epoch, step) before every step, so a run stopped at any step
boundary and resumed from its checkpoint continues exactly as if never stopped (on CPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

import vil
from ablations.data import build_datasets, make_batch_mixer
from ablations.data.deviceaug import DeviceAugment
from ablations.schema.config import RunConfig, to_dict
from ablations.schema.files import (
    close_logger,
    naming_path,
    trial_logger,
    utc_now,
    write_metrics,
    write_yaml,
)
from ablations.schema.record import RunRecord
from ablations.train import checkpoint as ckpt
from ablations.train.loaders import Loaders, make_loaders
from ablations.train.optim import make_optimizer, make_scheduler
from ablations.train.record import data_fields, record_load, start_record
from ablations.train.runtime import (
    Runtime,
    peak_memory_mb,
    resolve_runtime,
    seed_all,
    step_seed,
)  # fmt: skip
from ablations.train.steps import TrialFailed, build_model, evaluate, train_step
from ablations.train.tally import Tally
from ablations.train.trackers import Fanout
from ablations.train.trackers import check as check_trackers


class Interrupted(RuntimeError):
    """Stopped on request at a step boundary; the checkpoint holds the exact position."""


@dataclass
class Parts:
    """Everything built once per run."""

    rt: Runtime
    model: nn.Module  # the plain model (state dicts, evaluation)
    step_model: nn.Module  # what training calls: DDP- and/or compile-wrapped model
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loaders: Loaders
    mixer: Callable
    steps_per_epoch: int
    bundle: Any
    params: int
    flops: float
    augment: Callable | None = None  # data.augment_on=device: uint8 batch -> augmented floats
    ddp: nn.Module | None = None  # the DDP wrapper (no_sync between micro-batches), if any


def _null(*_: Any, **__: Any) -> None:
    return None


def train(
    config: RunConfig,
    run_dir: Path,
    progress: Any = None,
    *,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = True,
    record: RunRecord | None = None,
) -> RunRecord:
    """Train and evaluate one config in ``run_dir``; return its record (result.json).

    ``progress``: an object with ``start/step/epoch/log`` (ablations.app.progress) or None.
    ``should_stop``: polled at every step boundary; True -> checkpoint, raise Interrupted.
    ``resume``: continue from ``run_dir/checkpoint.pt`` when present.
    ``record``: the record to fill (identity fields set by the sweep); a new one if None.
    Raises Interrupted, TrialFailed (reason in the message) or the original exception; in
    every case result.json records the state and the reason first.
    """
    check_trackers(config.train.trackers)  # a config error: before any folder or training
    run_dir = Path(run_dir)
    rt = resolve_runtime(config.train)
    if rt.is_main:
        with naming_path(run_dir, "create"):
            run_dir.mkdir(parents=True, exist_ok=True)
    log = trial_logger(run_dir, run_dir.name, enabled=rt.is_main)
    rec = start_record(config, rt, record or RunRecord())
    record_load(rec, run_dir, "start")
    trk = Fanout(config.train.trackers, run_dir, log, enabled=rt.is_main)  # rank 0 logs
    try:
        parts = _build(config, rt)
        rec.params, rec.flops = parts.params, parts.flops
        data_fields(rec, parts.bundle)
        fitted = _fit(config, run_dir, parts, progress, should_stop, resume, log, rec, trk)
        rec.update(fitted)
        rec.state, rec.fail_reason = "COMPLETE", None
        if fitted["steps_done"] < config.train.epochs * parts.steps_per_epoch:
            rec.state, rec.fail_reason = "TRUNCATED", truncation_reason(config, fitted)
    except BaseException as e:
        interrupted = isinstance(e, Interrupted | KeyboardInterrupt)
        rec.state = "INTERRUPTED" if interrupted else "FAIL"
        rec.fail_reason = "interrupted" if interrupted else f"{type(e).__name__}: {e}"
        if getattr(e, "run_state", None):  # a deliberate stop with its own state (PRUNED)
            rec.state, rec.fail_reason = e.run_state, str(e)
        trace = rec.state == "FAIL" and not isinstance(e, TrialFailed)  # unexpected errors
        log.error("run %s: %s", rec.state.lower(), rec.fail_reason, exc_info=trace)
        raise
    finally:
        rec.finished_at = utc_now()
        record_load(rec, run_dir, "end")
        rec.peak_mem_mb = peak_memory_mb(rt.device)
        try:
            if rt.is_main:
                rec.write(run_dir)
        finally:
            trk.close(rec)  # after result.json: the trackers log the record as written
            close_logger(log)
    return rec


def truncation_reason(config: RunConfig, fitted: dict[str, Any]) -> str:
    """Why a run stopped before its last step: the budget that was reached."""
    tc = config.train
    by_steps = tc.max_steps is not None and fitted["steps_done"] >= tc.max_steps
    budget = (
        f"train.max_steps={tc.max_steps}" if by_steps else f"train.time_limit_s={tc.time_limit_s}"
    )
    return (f"truncated: {budget} reached after {fitted['epochs_done']} of {tc.epochs} epochs "
            f"({fitted['steps_done']} step{'' if fitted['steps_done'] == 1 else 's'})")  # fmt: skip


def _build(config: RunConfig, rt: Runtime) -> Parts:
    """Data, model (counted before wrapping), optimizer, schedule, loaders."""

    seed_all(config.train.seed)  # model init depends on the run seed only
    bundle = build_datasets(config.data)
    model = build_model(config, bundle.num_classes)

    params, flops = vil.count_params(model), vil.count_flops(model, config.data.img_size)
    model.to(rt.device)
    step_model: nn.Module = model
    ddp = None
    if rt.distributed:
        ids = [rt.device.index] if rt.device.type == "cuda" else None
        step_model = ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if rt.compile:
        step_model = torch.compile(step_model)
    optimizer = make_optimizer(model, config.train)
    loaders = make_loaders(bundle.train, bundle.val, config, rt)
    steps = len(loaders.train)
    scheduler = make_scheduler(optimizer, config.train, steps)
    mixer = make_batch_mixer(config.data, bundle.num_classes)
    augment = None
    if config.data.augment_on == "device":
        augment = DeviceAugment(config.data.img_size)
    return Parts(
        rt, model, step_model, optimizer, scheduler, loaders, mixer, steps, bundle, params, flops,
        augment, ddp,
    )  # fmt: skip


def _resume(config: RunConfig, run_dir: Path, parts: Parts, log: Any) -> ckpt.Position:
    state = ckpt.load(run_dir / "checkpoint.pt")
    if state is None:
        return ckpt.Position()
    changed = ckpt.config_changes(state.get("config", {}), to_dict(config))
    if changed:
        raise TrialFailed(
            f"{run_dir / 'checkpoint.pt'} was written with a different config "
            f"({', '.join(changed[:5])}); delete it or rerun the point"
        )
    pos = ckpt.restore(state, parts.model, parts.optimizer, parts.scheduler)
    log.info("resumed from checkpoint: epoch %d, step %d", pos.epoch, pos.step_in_epoch)
    return pos


def _fit(config, run_dir, parts, progress, should_stop, resume, log, rec, trk) -> dict[str, Any]:
    tc, rt = config.train, parts.rt
    pos = _resume(config, run_dir, parts, log) if resume else ckpt.Position()
    if pos.global_step > 0:  # the count travels in the checkpoint to later resumptions
        pos.resumes += 1
    rec.resumes = pos.resumes
    rec.resumed_from = {
        "epoch": pos.epoch,
        "step": pos.step_in_epoch,
        "global": pos.global_step,
    }
    if rt.is_main:
        write_yaml(run_dir / "config.yaml", to_dict(config))
        write_metrics(run_dir / "metrics.csv", pos.history)
    trk.start(rec, resumed=pos.global_step > 0)
    on = progress or _NullProgress()
    on.start(run_dir.name, tc.epochs, parts.steps_per_epoch, pos)
    log.info(
        "params %d, flops/img %.4g, %d steps/epoch, device %s, %s, compile=%s",
        parts.params, parts.flops, parts.steps_per_epoch, rt.device, rt.precision, rt.compile,
    )  # fmt: skip
    t0 = time.perf_counter() - pos.wall_time_s
    ctx = _Context(config, run_dir, parts, on, should_stop, log, t0, trk, rec)
    budget_stop = False
    while pos.epoch < tc.epochs and not budget_stop:
        budget_stop = not _run_epoch(ctx, pos)
        if not budget_stop:
            last = pos.epoch + 1 == tc.epochs
            _end_epoch(ctx, pos, last or (pos.epoch + 1) % tc.eval_every == 0)
            _save(ctx, pos, force=last or pos.epoch % tc.ckpt_every == 0)
    final = _stop_at_budget(ctx, pos) if budget_stop else _final_metrics(ctx, pos)
    return {
        **final,
        "train_time_s": pos.wall_time_s,
        "img_per_s": pos.images / max(pos.train_time_s, 1e-9),
        "train_step_time_s": pos.train_time_s,
        **progress_of(pos, parts.steps_per_epoch),
    }


def progress_of(pos: ckpt.Position, steps_per_epoch: int) -> dict[str, int]:
    """The record's progress fields: optimiser steps done, and whole epochs among them."""
    return {"steps_done": pos.global_step, "epochs_done": pos.global_step // steps_per_epoch}


def _end_epoch(ctx: _Context, pos: ckpt.Position, evaluate_now: bool) -> None:
    """Close a finished epoch: its metrics row (evaluated when due) joins the history."""
    row = _close_epoch(ctx, pos, evaluate_now)
    pos.epoch, pos.step_in_epoch, pos.acc = pos.epoch + 1, 0, {}
    pos.history.append(row)
    record_load(ctx.rec, ctx.run_dir, "epoch")  # the run's mean load, not just its ends
    ctx.progress.epoch(row)
    ctx.trackers.log_epoch(row)
    ctx.log.info("epoch %s", row)


def _stop_at_budget(ctx: _Context, pos: ckpt.Position) -> dict[str, Any]:
    """train.max_steps / time_limit_s reached: checkpoint the exact position (a larger budget
    resumes from it: the budget is not science), evaluate, return the final metrics. A cut
    epoch's row (evaluated at the cut) goes to metrics.csv, not into the checkpoint's history
    of complete epochs."""
    _save(ctx, pos, force=True)
    if pos.step_in_epoch == 0:  # stopped at an epoch boundary: that epoch's row is the last
        return _final_metrics(ctx, pos)
    row = _close_epoch(ctx, pos, evaluate_now=True)
    if ctx.parts.rt.is_main:
        write_metrics(ctx.run_dir / "metrics.csv", [*pos.history, row])
    ctx.progress.epoch(row)
    ctx.trackers.log_epoch(row)
    ctx.log.info("epoch (cut by the budget) %s", row)
    return {"top1": row["val_top1"], "top5": row["val_top5"], "val_loss": row["val_loss"]}


@dataclass
class _Context:
    config: RunConfig
    run_dir: Path
    parts: Parts
    progress: Any
    should_stop: Callable[[], bool] | None
    log: Any
    t0: float  # perf_counter origin such that now - t0 = total wall time incl. earlier runs
    trackers: Fanout  # train.trackers: fed only values already on the host
    rec: RunRecord  # its progress fields follow the run (an interrupted record says them)
    # what the progress bar shows between reads: the last read's mean loss, epoch img/s
    # (None before the first read: a placeholder NaN would read as a diverged run)
    shown: dict[str, float | None] = field(default_factory=lambda: {"loss": None, "img_s": None})
    val_correct: dict = field(default_factory=dict)  # the last evaluation's per-image top-1


def _stop_requested(ctx: _Context) -> bool:
    """The caller's stop request: host-side only (a flag set by a signal handler or thread)."""
    return bool(ctx.should_stop and ctx.should_stop())


def _time_out(ctx: _Context) -> bool:
    tl = ctx.config.train.time_limit_s
    return tl is not None and time.perf_counter() - ctx.t0 >= tl


def _out_of_budget(ctx: _Context, pos: ckpt.Position) -> bool:
    """max_steps (the same on every rank); the time limit here only in a single process:
    under DDP ranks' clocks differ, so it is agreed on at the read cadence (see _flush)."""
    tc = ctx.config.train
    if tc.max_steps is not None and pos.global_step >= tc.max_steps:
        return True
    return not ctx.parts.rt.distributed and _time_out(ctx)


def _flush(ctx: _Context, pos: ckpt.Position, tally: Tally) -> list[bool]:
    """Read the device tally (a host sync): fail on a non-finite loss, add the loss sums to
    the epoch's, update what the progress bar shows. Under DDP the stop request and the time
    limit are polled and agreed on here (rank-wise OR); returns [stop, out of time]."""
    rt = ctx.parts.rt
    flags = [_stop_requested(ctx), _time_out(ctx)] if rt.distributed else []
    r = tally.read(rt, flags)
    if r.bad_step is not None:
        raise TrialFailed(f"non-finite loss ({r.bad_value}) at step {r.bad_step}")
    acc = pos.acc
    acc.update(loss_sum=acc["loss_sum"] + r.loss_sum, steps=acc["steps"] + r.steps)
    ctx.rec.update(progress_of(pos, ctx.parts.steps_per_epoch))  # a failed run's, too
    if r.steps:
        ctx.shown["loss"] = r.loss_sum / r.steps
    return r.flags or [False, False]


def _interrupt(ctx: _Context, pos: ckpt.Position, tally: Tally | None, step: int) -> None:
    """Checkpoint the exact position (mid-epoch, or an epoch's end before its evaluation),
    note the progress in the record, raise Interrupted."""
    if tally is not None and tally.steps:
        _flush(ctx, pos, tally)
    _save(ctx, pos, force=True)
    ctx.rec.update(progress_of(pos, ctx.parts.steps_per_epoch))
    raise Interrupted(f"interrupted at epoch {pos.epoch}, step {step}")


def _run_epoch(ctx: _Context, pos: ckpt.Position) -> bool:
    """Steps of epoch ``pos.epoch`` from ``pos.step_in_epoch``; False if stopped early.

    No host sync between reads of the tally (every train.log_every steps and at epoch end).
    A single process polls ``should_stop`` every step (host-only); DDP ranks at the reads.
    """
    parts, tc = ctx.parts, ctx.config.train
    if pos.step_in_epoch >= parts.steps_per_epoch:
        return True  # stopped after the last step, before the epoch's evaluation
    parts.loaders.set_epoch(tc.seed, pos.epoch)
    batches = iter(parts.loaders.train)
    acc = pos.acc = pos.acc or {"loss_sum": 0.0, "steps": 0, "time": 0.0, "images": 0}
    tally = Tally(parts.rt.device, pos.global_step)
    for i in range(parts.steps_per_epoch):
        torch.manual_seed(step_seed(tc.seed, pos.epoch, i))
        if i < pos.step_in_epoch:
            next(batches)  # replay the data draws of the steps done before the resume
            continue
        if not parts.rt.distributed and _stop_requested(ctx):
            _interrupt(ctx, pos, tally, i)
        if _out_of_budget(ctx, pos):
            _flush(ctx, pos, tally)
            return False
        t = time.perf_counter()
        images, labels = next(batches)
        tally.add(train_step(parts, images, labels, ctx.config, pos.global_step))
        n = images.size(0) * parts.rt.world
        pos.global_step, pos.step_in_epoch, pos.images = pos.global_step + 1, i + 1, pos.images + n
        read = pos.global_step % tc.log_every == 0 or i + 1 == parts.steps_per_epoch
        stop, out_of_time = _flush(ctx, pos, tally) if read else (False, False)
        dt = time.perf_counter() - t  # includes the queued GPU work up to the last read
        pos.train_time_s += dt
        acc.update(time=acc["time"] + dt, images=acc["images"] + n)
        if read:
            ctx.shown["img_s"] = acc["images"] / max(acc["time"], 1e-9)
        lr = parts.optimizer.param_groups[0]["lr"]
        ctx.progress.step(pos.epoch, i + 1, ctx.shown["loss"], lr, ctx.shown["img_s"])
        if read:
            ctx.trackers.log_step(pos.global_step, ctx.shown["loss"], lr, ctx.shown["img_s"])
        if stop:
            _interrupt(ctx, pos, tally, i + 1)
        if out_of_time:
            return False
    if not parts.rt.distributed and _stop_requested(ctx):  # DDP: agreed at the last read
        _interrupt(ctx, pos, tally, parts.steps_per_epoch)  # no evaluation pass first
    return True


def _close_epoch(ctx: _Context, pos: ckpt.Position, evaluate_now: bool) -> dict[str, Any]:
    acc = pos.acc or {"loss_sum": 0.0, "steps": 0, "time": 0.0, "images": 0}
    row: dict[str, Any] = {
        "epoch": pos.epoch + 1, "step": pos.global_step,
        "lr": ctx.parts.optimizer.param_groups[0]["lr"],
        "train_loss": acc["loss_sum"] / max(acc["steps"], 1),
        "val_loss": None, "val_top1": None, "val_top5": None,
        "epoch_time_s": acc["time"], "img_per_s": acc["images"] / max(acc["time"], 1e-9),
    }  # fmt: skip
    if evaluate_now:
        row.update(_evaluate(ctx, pos))
        ctx.val_correct = row.pop("val_correct")  # the record's, not a metrics.csv column
    pos.wall_time_s = time.perf_counter() - ctx.t0
    return row


def _evaluate(ctx: _Context, pos: ckpt.Position) -> dict[str, Any]:
    """The validation pass. A single process stops it at a stop request (between batches):
    checkpointed at ``pos`` (training of the epoch done), the resumed run evaluates. DDP
    ranks finish it (they agree on a stop only at the reads of training)."""
    p = ctx.parts

    def until_stop(loader: Any) -> Any:
        for batch in loader:
            if not p.rt.distributed and _stop_requested(ctx):
                _interrupt(ctx, pos, None, pos.step_in_epoch)
            yield batch

    return evaluate(p.model, until_stop(p.loaders.val), p.rt)


def _save(ctx: _Context, pos: ckpt.Position, force: bool) -> None:
    pos.wall_time_s = time.perf_counter() - ctx.t0
    if force and ctx.parts.rt.is_main:
        p = ctx.parts
        ckpt.save(
            ctx.run_dir / "checkpoint.pt",
            p.model,
            p.optimizer,
            p.scheduler,
            pos,
            to_dict(ctx.config),
        )
        write_metrics(ctx.run_dir / "metrics.csv", pos.history)
    if ctx.parts.rt.distributed:
        dist.barrier()


def _final_metrics(ctx: _Context, pos: ckpt.Position) -> dict[str, Any]:
    """The last evaluation (run again if the checkpoint was already past the end)."""
    last = pos.history[-1] if pos.history else {}
    if last.get("val_top1") is None or not ctx.val_correct:  # resumed past the last eval
        last = {**last, **_evaluate(ctx, pos)}
        ctx.val_correct = last["val_correct"]
    return {"top1": last["val_top1"], "top5": last["val_top5"], "val_loss": last["val_loss"],
            "val_correct": ctx.val_correct}  # fmt: skip


class _NullProgress:
    start = step = epoch = log = staticmethod(_null)
