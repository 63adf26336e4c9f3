"""Two DDP ranks (gloo, CPU) agree at the read cadence: a NaN fails both naming its step, and a
stop asked on one rank only stops both at the same step (ablations/train/tally.py)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ablations.schema.catalog import load_catalog
from ablations.schema.config import apply


def _cfg(**train):
    cat = load_catalog()
    cfg = cat.experiment("table2").config_for(cat.protocol("smoke"), "alternating", 0)
    data = {"train_samples": 128, "val_samples": 32, "img_size": 16}
    over = {"batch_size": 16, "epochs": 1, "micro_batch": 4, **train}
    return apply(cfg, {"data": data, "train": over}, "t")


def _rank(rank: int, world: int, port: int, tmp: str) -> None:
    from ablations.train import Interrupted, TrialFailed, train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    out: dict[str, str] = {}
    try:
        train(_cfg(log_every=3, inject_nan_at_step=1), Path(tmp) / "nan")
    except TrialFailed as e:
        out["nan"] = str(e)
    polls = {"n": 0}

    def rank0_asks_at_third_poll() -> bool:
        polls["n"] += 1
        return rank == 0 and polls["n"] >= 3

    try:
        train(_cfg(log_every=2), Path(tmp) / "stop", should_stop=rank0_asks_at_third_poll)
    except Interrupted as e:
        out["stop"] = str(e)
    out["polls"] = str(polls["n"])
    (Path(tmp) / f"rank{rank}.json").write_text(json.dumps(out))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ranks_agree_on_nan_and_stop_at_the_cadence(tmp_path):
    mp.spawn(_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for out in ranks:  # NaN at step 1 is seen at the read after step 2, on both ranks
        assert out["nan"] == "non-finite loss (nan) at step 1"
        # reads after steps 1, 3, 5 (every 2nd global step): the 3rd poll stops both ranks
        assert out["stop"] == "interrupted at epoch 0, step 6" and out["polls"] == "3"
