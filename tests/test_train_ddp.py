"""Two DDP ranks (gloo, CPU): one step on two halves of a batch moves the weights as one process
on the whole batch (the gradients are all-reduced), and the ranks agree at the read cadence: a
NaN fails both naming its step, and a stop asked on one rank only stops both at the same step
(ablations/train/tally.py)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ablations.schema.catalog import load_catalog
from ablations.schema.config import apply
from ablations.train import epoch, loop
from ablations.train.runtime import resolve_runtime
from tests.ports import free_port  # noqa: E402


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


def test_ranks_agree_on_nan_and_stop_at_the_cadence(tmp_path):
    mp.spawn(_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for out in ranks:  # NaN at step 1 is seen at the read after step 2, on both ranks
        assert out["nan"] == "non-finite loss (nan) at step 1"
        # reads after steps 1, 3, 5 (every 2nd global step): the 3rd poll stops both ranks
        assert out["stop"] == "interrupted at epoch 0, step 6" and out["polls"] == "3"


# --- one step on two ranks = one step of one process on the combined batch -----------------

BATCH, MICRO = 16, (None, 4)  # micro 4: DDP's no_sync on all but the last micro-batch


def _step_cfg(micro_batch):
    cfg = _cfg(micro_batch=micro_batch, grad_clip=0.0)  # clipping would hide a wrong scale
    off = {"data": {"mixup_prob": 0.0, "cutmix_prob": 0.0}, "model": {"drop_path": 0.0}}
    return apply(cfg, off, "t")  # no mixing, no drop path: no draw depends on the rank


def _one_step(cfg, rank: int = 0, world: int = 1) -> dict[str, dict]:
    """Initial weights, and weights and gradients after one train_step on this rank's share
    of a fixed batch."""
    parts = loop._build(cfg, resolve_runtime(cfg.train))
    start = copy.deepcopy(parts.model.state_dict())
    g = torch.Generator().manual_seed(7)
    images = torch.randn(BATCH, 3, 16, 16, generator=g)
    labels = torch.randint(0, parts.bundle.num_classes, (BATCH,), generator=g)
    share = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    epoch.train_step(parts, images[share], labels[share], cfg, 0)
    grads = {n: p.grad.clone() for n, p in parts.model.named_parameters() if p.grad is not None}
    return {"start": start, "weights": parts.model.state_dict(), "grads": grads}


def _step_rank(rank: int, world: int, port: int, tmp: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    save_rank_steps(Path(tmp), rank, world)
    dist.destroy_process_group()


def test_two_ranks_step_as_one_process_on_the_combined_batch(tmp_path):
    mp.spawn(_step_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    assert_ranks_stepped_as_one_process(tmp_path)


def save_rank_steps(folder: Path, rank: int, world: int) -> None:
    """This rank's ``_one_step`` for each micro-batch setting (in a joined process group)."""
    for micro in MICRO:
        torch.save(_one_step(_step_cfg(micro), rank, world), Path(folder) / f"{rank}-{micro}.pt")


def assert_ranks_stepped_as_one_process(folder: Path) -> None:
    """The two ranks' saved steps (``save_rank_steps``) equal one process on the whole batch
    (also used by tests/test_submit.py, on ranks that submitit started)."""
    torch.set_num_threads(1)
    for micro in MICRO:
        one = _one_step(_step_cfg(micro))
        ranks = [torch.load(Path(folder) / f"{r}-{micro}.pt") for r in range(2)]
        assert ranks[0]["grads"].keys() == ranks[1]["grads"].keys() == one["grads"].keys()
        for name, g in one["grads"].items():  # the mean over both halves: all-reduced
            for r in ranks:
                torch.testing.assert_close(r["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)
        for name, w in one["weights"].items():
            for r in ranks:
                torch.testing.assert_close(r["weights"][name], w, rtol=1e-5, atol=1e-6, msg=name)
        moved = [n for n, w in one["weights"].items() if not torch.equal(w, one["start"][n])]
        assert moved  # the step changed the weights: equal no-ops would pass trivially
