"""One epoch of a run, step by step: the steps between tally reads, the stop request and the
budget checked at step boundaries, the epoch's evaluation, checkpoints and the final metrics.

``loop.train`` builds the parts and the context, then drives these. Global RNGs are re-seeded
from (seed, epoch, step) before every step, so a run stopped at any step boundary and resumed
from its checkpoint continues exactly as if never stopped (on CPU).
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

from ablations.schema.config import RunConfig, to_dict
from ablations.schema.files import write_metrics
from ablations.schema.record import RunRecord
from ablations.train import checkpoint as ckpt
from ablations.train.loaders import Loaders
from ablations.train.record import record_load
from ablations.train.runtime import Runtime, step_seed
from ablations.train.steps import TrialFailed, evaluate, train_step
from ablations.train.tally import Tally
from ablations.train.trackers import Fanout


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
    digests: dict[str, str] = field(default_factory=dict)  # init, data (train/digests.py)


@dataclass
class EpochContext:
    """What the epoch functions share for one run."""

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


def progress_of(pos: ckpt.Position, steps_per_epoch: int) -> dict[str, int]:
    """The record's progress fields: optimiser steps done, and whole epochs among them."""
    return {"steps_done": pos.global_step, "epochs_done": pos.global_step // steps_per_epoch}


def end_epoch(ctx: EpochContext, pos: ckpt.Position, evaluate_now: bool) -> None:
    """Close a finished epoch: its metrics row (evaluated when due) joins the history."""
    row = _close_epoch(ctx, pos, evaluate_now)
    pos.epoch, pos.step_in_epoch, pos.acc = pos.epoch + 1, 0, {}
    pos.history.append(row)
    record_load(ctx.rec, ctx.run_dir, "epoch")  # the run's mean load, not just its ends
    ctx.progress.epoch(row)
    ctx.trackers.log_epoch(row)
    ctx.log.info("epoch %s", row)


def stop_at_budget(ctx: EpochContext, pos: ckpt.Position) -> dict[str, Any]:
    """train.max_steps / time_limit_s reached: checkpoint the exact position (a larger budget
    resumes from it: the budget is not science), evaluate, return the final metrics. A cut
    epoch's row (evaluated at the cut) goes to metrics.csv, not into the checkpoint's history
    of complete epochs."""
    save(ctx, pos, force=True)
    if pos.step_in_epoch == 0:  # stopped at an epoch boundary: that epoch's row is the last
        return final_metrics(ctx, pos)
    row = _close_epoch(ctx, pos, evaluate_now=True)
    if ctx.parts.rt.is_main:
        write_metrics(ctx.run_dir / "metrics.csv", [*pos.history, row])
    ctx.progress.epoch(row)
    ctx.trackers.log_epoch(row)
    ctx.log.info("epoch (cut by the budget) %s", row)
    return {"top1": row["val_top1"], "top5": row["val_top5"], "val_loss": row["val_loss"]}


def _stop_requested(ctx: EpochContext) -> bool:
    """The caller's stop request: host-side only (a flag set by a signal handler or thread)."""
    return bool(ctx.should_stop and ctx.should_stop())


def _time_out(ctx: EpochContext) -> bool:
    tl = ctx.config.train.time_limit_s
    return tl is not None and time.perf_counter() - ctx.t0 >= tl


def _out_of_budget(ctx: EpochContext, pos: ckpt.Position) -> bool:
    """max_steps (the same on every rank); the time limit here only in a single process:
    under DDP ranks' clocks differ, so it is agreed on at the read cadence (see _flush)."""
    tc = ctx.config.train
    if tc.max_steps is not None and pos.global_step >= tc.max_steps:
        return True
    return not ctx.parts.rt.distributed and _time_out(ctx)


def _flush(ctx: EpochContext, pos: ckpt.Position, tally: Tally) -> list[bool]:
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


def _interrupt(ctx: EpochContext, pos: ckpt.Position, tally: Tally | None, step: int) -> None:
    """Checkpoint the exact position (mid-epoch, or an epoch's end before its evaluation),
    note the progress in the record, raise Interrupted."""
    if tally is not None and tally.steps:
        _flush(ctx, pos, tally)
    save(ctx, pos, force=True)
    ctx.rec.update(progress_of(pos, ctx.parts.steps_per_epoch))
    raise Interrupted(f"interrupted at epoch {pos.epoch}, step {step}")


def run_epoch(ctx: EpochContext, pos: ckpt.Position) -> bool:
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


def _close_epoch(ctx: EpochContext, pos: ckpt.Position, evaluate_now: bool) -> dict[str, Any]:
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


def _evaluate(ctx: EpochContext, pos: ckpt.Position) -> dict[str, Any]:
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


def save(ctx: EpochContext, pos: ckpt.Position, force: bool) -> None:
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


def final_metrics(ctx: EpochContext, pos: ckpt.Position) -> dict[str, Any]:
    """The last evaluation (run again if the checkpoint was already past the end)."""
    last = pos.history[-1] if pos.history else {}
    if last.get("val_top1") is None or not ctx.val_correct:  # resumed past the last eval
        last = {**last, **_evaluate(ctx, pos)}
        ctx.val_correct = last["val_correct"]
    return {"top1": last["val_top1"], "top5": last["val_top5"], "val_loss": last["val_loss"],
            "val_correct": ctx.val_correct}  # fmt: skip
