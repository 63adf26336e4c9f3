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
from pathlib import Path
from typing import Any

import torch
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
from ablations.train.digests import data_digest, weights_digest
from ablations.train.epoch import (
    EpochContext,
    Interrupted,
    Parts,
    end_epoch,
    final_metrics,
    progress_of,
    run_epoch,
    save,
    stop_at_budget,
)
from ablations.train.loaders import make_loaders
from ablations.train.optim import make_optimizer, make_scheduler
from ablations.train.record import data_fields, record_load, start_record
from ablations.train.runtime import (
    Runtime,
    peak_memory_mb,
    resolve_runtime,
    seed_all,
)  # fmt: skip
from ablations.train.steps import TrialFailed, build_model
from ablations.train.trackers import Fanout
from ablations.train.trackers import check as check_trackers


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
        rec.init_digest, rec.data_digest = parts.digests["init"], parts.digests["data"]
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

    seed_all(config.train.seed)  # model init: the run seed, or model.init_seed alone
    bundle = build_datasets(config.data)
    model = build_model(config, bundle.num_classes)  # model.init_seed: its own init draws
    init = weights_digest(model)

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
    digests = {"init": init, "data": data_digest(loaders, config.train.seed, steps)}
    return Parts(
        rt, model, step_model, optimizer, scheduler, loaders, mixer, steps, bundle, params, flops,
        augment, ddp, digests,
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
    ctx = EpochContext(config, run_dir, parts, on, should_stop, log, t0, trk, rec)
    budget_stop = False
    while pos.epoch < tc.epochs and not budget_stop:
        budget_stop = not run_epoch(ctx, pos)
        if not budget_stop:
            last = pos.epoch + 1 == tc.epochs
            end_epoch(ctx, pos, last or (pos.epoch + 1) % tc.eval_every == 0)
            save(ctx, pos, force=last or pos.epoch % tc.ckpt_every == 0)
    final = stop_at_budget(ctx, pos) if budget_stop else final_metrics(ctx, pos)
    return {
        **final,
        "train_time_s": pos.wall_time_s,
        "img_per_s": pos.images / max(pos.train_time_s, 1e-9),
        "train_step_time_s": pos.train_time_s,
        **progress_of(pos, parts.steps_per_epoch),
    }


class _NullProgress:
    start = step = epoch = log = staticmethod(_null)
