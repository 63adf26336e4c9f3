"""Per-step loss bookkeeping kept on the device, read by the host only at a cadence.

Reading a loss (``float(loss)``) waits for every queued kernel: one per step stalls the GPU
queue, and under DDP an all-reduce per step adds a collective. ``Tally.add`` only queues
device ops: the loss is summed, and a non-finite loss records its global step (first one
only) via ``torch.where`` on a device step counter. ``Tally.read`` brings everything to the
host in one transfer every ``train.log_every`` steps and at epoch end; under DDP it
reduces the sums and the stop/time-out flags there (two small collectives), so every rank
takes the same decision at the same step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ablations.train.runtime import Runtime


@dataclass
class Reading:
    """What the host learns at a read: sums since the last read, the first bad step, flags."""

    loss_sum: float  # sum over the window's steps of the (rank-mean) step loss
    steps: int  # steps in the window
    bad_step: int | None  # global step of the first non-finite loss, None if none
    bad_value: float  # that loss (this rank's; nan when another rank saw it)
    flags: list[bool]  # the caller's flags, True where any rank raised them


class Tally:
    """Device-side loss sum and first-non-finite step of the steps since the last read."""

    def __init__(self, device: torch.device, global_step: int) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64  # mps: no float64
        self.device = device
        self.loss_sum = torch.zeros((), dtype=dtype, device=device)
        self.bad_step = torch.full((), math.inf, dtype=dtype, device=device)
        self.bad_value = torch.zeros((), dtype=dtype, device=device)
        self.step = torch.full((), float(global_step), dtype=dtype, device=device)
        self.steps = 0  # host-side count since the last read

    def add(self, loss: torch.Tensor) -> None:
        """Queue the bookkeeping of one step's loss (no host sync)."""
        loss = loss.detach().to(self.loss_sum.dtype)
        first = ~torch.isfinite(loss) & torch.isinf(self.bad_step)
        self.bad_step = torch.where(first, self.step, self.bad_step)
        self.bad_value = torch.where(first, loss, self.bad_value)
        self.loss_sum += loss
        self.step += 1
        self.steps += 1

    def read(self, rt: Runtime, flags: list[bool] | None = None) -> Reading:
        """One device->host transfer (plus, under DDP, one SUM and one MIN all-reduce)."""
        flags = list(flags or [])
        total = self.loss_sum.reshape(1).clone()
        local_bad = self.bad_step.reshape(1)
        mins = torch.cat([local_bad, -torch.tensor(flags, dtype=total.dtype).to(self.device)])
        if rt.distributed:
            dist.all_reduce(total)
            total /= rt.world
            mins = mins.clone()
            dist.all_reduce(mins, op=dist.ReduceOp.MIN)
        packed = torch.cat([total, mins, local_bad, self.bad_value.reshape(1)])
        host = packed.to("cpu", copy=True).tolist()  # the one device->host copy (a sync)
        loss_sum, bad, *raised = host[: 2 + len(flags)]
        mine, value = host[-2:]
        reading = Reading(
            loss_sum=loss_sum, steps=self.steps,
            bad_step=None if math.isinf(bad) else int(bad),
            bad_value=value if mine == bad else math.nan,
            flags=[r < 0 for r in raised],
        )  # fmt: skip
        self.loss_sum.zero_()
        self.steps = 0
        return reading
