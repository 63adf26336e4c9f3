"""Functions that tests/test_submit.py submits through submitit's LocalExecutor (importable as
``tests.submit_probe`` in the task processes, so submitit pickles them by reference)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

from ablations.app.submit_task import distributed_env
from ablations.train.runtime import init_distributed
from tests.test_train_ddp import save_rank_steps


def ddp_step(folder: str) -> int:
    """One DDP rank as a submitted task joins its group the way ``submit``'s tasks do
    (submitit's environment -> env:// variables -> ``init_distributed``, gloo on CPU) and saves
    its share of one train step; returns its rank."""
    os.environ.update(distributed_env())
    torch.set_num_threads(1)
    if not init_distributed():
        raise RuntimeError(f"no process group (WORLD_SIZE={os.environ.get('WORLD_SIZE')})")
    rank, world = dist.get_rank(), dist.get_world_size()
    save_rank_steps(Path(folder), rank, world)
    dist.destroy_process_group()
    return rank
