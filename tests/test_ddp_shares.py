"""Every DDP rank reads its own part of each epoch, the last partial batch is dropped on every
rank, and only rank 0 writes to the trackers (issue 27 items 2, 3, 6).

Two gloo ranks on the CPU train through the real loaders (DistributedSampler inside the
per-sample-seed wrappers of ablations/train/loaders.py) while every sample fetched for
training is recorded as ``(index, augmentation seed)``.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ablations.schema.config import apply
from ablations.sweep.plan import plan
from ablations.sweep.spec import SweepOptions, resolve
from ablations.train import loaders, trackers
from tests.ports import free_port  # noqa: E402

WORLD, BATCH, EPOCHS = 2, 16, 2  # 8 images per rank and step
EVEN, UNEVEN = 64, 70  # 64: 4 steps, nothing dropped; 70: 35 a rank = 4 x 8 + 3 dropped
FETCHED: list[list[int]] = []  # (index, seed) of every training sample fetched, this process
REAL_GETITEM = loaders.SeededDataset.__getitem__


def _sweep(train_samples: int, epochs: int = EPOCHS):
    data = {"train_samples": train_samples, "val_samples": 16, "img_size": 16}
    over = {"data": data, "train": {"batch_size": BATCH, "epochs": epochs, "log_every": 2}}
    return resolve(SweepOptions("table2", protocol="smoke", variants=["alternating"],
                                seeds=[0], overrides=over))  # fmt: skip


def _cfg(train_samples: int, epochs: int = EPOCHS, **train):
    s = _sweep(train_samples, epochs)
    return apply(s.config_for(s.grid[0]), {"train": train}, "t")


def _fetch_logged(self, item):
    FETCHED.append([int(item[0]), int(item[1])])
    return REAL_GETITEM(self, item)


class CountingTracker:
    """A tracker that writes every call to its own file: one file per writer."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / f"{os.getpid()}-{uuid.uuid4().hex}.jsonl"

    def _write(self, *event) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(event) + "\n")

    def start(self, info, resume_id):
        self._write("start", info.name)
        return self.path.stem

    def log_params(self, params) -> None:
        self._write("params")

    def log_metrics(self, step, metrics) -> None:
        self._write("metrics", "epoch" if "epoch" in metrics else "step", step)

    def log_artifacts(self, paths, folder="") -> None:
        self._write("artifacts")

    def finish(self, state, summary) -> None:
        self._write("finish", state)


def _take(since: int) -> list[list[int]]:
    return FETCHED[since:]


def _rank(rank: int, world: int, port: int, tmp: str) -> None:
    from ablations.train import Interrupted, train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    loaders.SeededDataset.__getitem__ = _fetch_logged
    writers = Path(tmp) / "writers"
    writers.mkdir(exist_ok=True)
    trackers.TRACKERS.register("counting", trackers.Entry("json", lambda: CountingTracker(writers)))
    out: dict = {}
    rec = train(_cfg(EVEN, trackers=["counting"]), Path(tmp) / "even")
    out["even"], out["even_steps"] = _take(0), rec.steps_done
    polls = {"n": 0}

    def rank0_at_third_read() -> bool:  # reads after steps 2, 4, 6: stops at epoch 1, step 2
        polls["n"] += 1
        return rank == 0 and polls["n"] >= 3

    n = len(FETCHED)
    try:
        train(_cfg(EVEN), Path(tmp) / "cut", should_stop=rank0_at_third_read)
    except Interrupted as e:
        out["stopped"] = str(e)
    out["cut"], n = _take(n), len(FETCHED)
    rec = train(_cfg(EVEN), Path(tmp) / "cut")
    out["resumed"], out["resumed_from"], n = _take(n), rec.resumed_from, len(FETCHED)
    rec = train(_cfg(UNEVEN), Path(tmp) / "uneven")
    out["uneven"], out["uneven_steps"] = _take(n), rec.steps_done
    (Path(tmp) / f"rank{rank}.json").write_text(json.dumps(out))
    dist.destroy_process_group()


def _epochs(fetched: list[list[int]], per_epoch: int) -> list[list[list[int]]]:
    assert len(fetched) % per_epoch == 0, (len(fetched), per_epoch)
    return [fetched[a : a + per_epoch] for a in range(0, len(fetched), per_epoch)]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[list[dict], Path]:
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_rank, args=(WORLD, free_port(), str(tmp)), nprocs=WORLD, join=True)
    return [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(WORLD)], tmp


def test_each_rank_reads_its_own_share_in_a_new_order_each_epoch(ranks):
    out, _ = ranks
    per_rank = EVEN // WORLD  # 32 = 4 steps of 8, nothing dropped
    seen = [_epochs(o["even"], per_rank) for o in out]
    assert [len(s) for s in seen] == [EPOCHS] * WORLD
    assert [o["even_steps"] for o in out] == [EPOCHS * EVEN // BATCH] * WORLD
    for epoch in range(EPOCHS):
        shares = [{i for i, _ in s[epoch]} for s in seen]
        assert all(len(sh) == per_rank for sh in shares)  # no sample twice on a rank
        assert not shares[0] & shares[1], f"epoch {epoch}: ranks read the same samples"
        assert shares[0] | shares[1] == set(range(EVEN)), f"epoch {epoch}: samples unread"
        seeds = [sd for s in seen for _, sd in s[epoch]]
        assert len(set(seeds)) == EVEN  # every sample of the epoch its own augmentation seed
    for s in seen:  # a new order (and share) each epoch, and new augmentation seeds
        assert [i for i, _ in s[0]] != [i for i, _ in s[1]]
        assert not {sd for _, sd in s[0]} & {sd for _, sd in s[1]}


def test_a_resumed_run_reads_what_the_uninterrupted_one_read(ranks):
    out, _ = ranks
    per_rank = EVEN // WORLD
    for o in out:
        assert o["stopped"] == "interrupted at epoch 1, step 2"
        assert o["resumed_from"] == {"epoch": 1, "step": 2, "global": 6}
        assert o["cut"] == o["even"][: per_rank + 2 * BATCH // WORLD]  # epoch 0 + 2 steps
        # the resumed process replays epoch 1's draws and goes on: the same samples, seeds
        assert o["resumed"] == o["even"][per_rank:]


def test_the_last_partial_batch_is_dropped_on_every_rank_as_the_dry_run_counts(ranks):
    out, _ = ranks
    (row,) = plan(_sweep(UNEVEN))
    assert row["train_steps"] == EPOCHS * (UNEVEN // BATCH) == 8  # 4 a epoch, 6 images left
    kept = (UNEVEN // BATCH) * BATCH // WORLD  # 32 of each rank's 35
    for o in out:
        assert o["uneven_steps"] == row["train_steps"]
        for epoch in _epochs(o["uneven"], kept):  # exactly 4 full batches a rank and epoch
            assert len({i for i, _ in epoch}) == kept
    for e in range(EPOCHS):
        shares = [{i for i, _ in _epochs(o["uneven"], kept)[e]} for o in out]
        assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == WORLD * kept


def test_one_process_drops_the_last_partial_batch_as_the_dry_run_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders.SeededDataset, "__getitem__", _fetch_logged)
    FETCHED.clear()
    from ablations.train import train

    (row,) = plan(_sweep(UNEVEN))
    rec = train(_cfg(UNEVEN), tmp_path)
    assert rec.steps_done == row["train_steps"] == 8
    assert len(FETCHED) == 8 * BATCH  # the 6 images left over each epoch are never loaded
    FETCHED.clear()


def test_only_rank_0_writes_to_the_trackers(ranks):
    _, tmp = ranks
    files = sorted((tmp / "writers").glob("*.jsonl"))
    assert len(files) == 1, f"{len(files)} tracker writers for one run"
    events = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert [e for e in events if e[0] == "start"] == [["start", "even"]]
    assert [e for e in events if e[0] == "finish"] == [["finish", "COMPLETE"]]
    for stream, want in (("step", [2, 4, 6, 8]), ("epoch", [4, 8])):
        steps = [e[2] for e in events if e[0] == "metrics" and e[1] == stream]
        assert steps == want, (stream, steps)  # each read once: no step twice
