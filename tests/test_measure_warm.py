"""--dry-run --measure times each model warm: the same warm-up steps are excluded for each,
models are timed interleaved, the spread of the repeats is reported, equal-FLOP models whose
speeds differ beyond it are flagged, and the load is stated beside the estimate."""

from __future__ import annotations

import json
import statistics
import time

import torch

from ablations.app.cli import main
from ablations.schema.catalog import load_catalog
from ablations.schema.config import apply
from ablations.sweep import plan
from ablations.train import instruments as timing
from ablations.train.measure import REPEATS, WARMUP, measure_models, peer_flags

CPU = torch.device("cpu")


def _start_up_models(slow_calls: int = 6, slow_s: float = 0.04, fast_s: float = 0.004):
    """Two models of equal cost in one process whose first ``slow_calls`` calls (of any
    model) are slow: the process's start-up, which the old measurement charged to the
    model measured first."""
    calls = []

    def model() -> None:
        calls.append(1)
        time.sleep(slow_s if len(calls) <= slow_calls else fast_s)

    return model, model


def test_interleaved_timing_charges_start_up_to_no_model():
    for order in ("ab", "ba"):
        a, b = _start_up_models()
        fns = {"a": a, "b": b}
        first, times = timing.interleaved([fns[k] for k in order], CPU, WARMUP, REPEATS)
        medians = [statistics.median(t) for t in times]
        assert all(len(t) == 5 for t in times) and len(first) == 2
        assert max(medians) < 0.02, (order, medians)  # neither carries the start-up
    a, b = _start_up_models()  # the old way (one model after another, one step excluded)
    old = [timing.measure(f, CPU, warmup=1, repeats=3, memory=False).median_s for f in (a, b)]
    assert old[0] > 5 * old[1], old  # the fake reproduces the bug the interleaving removes


def _row(name: str, flops: int, speeds: list[float]) -> dict:
    return {"name": name, "flops": flops, "img_per_s": statistics.median(speeds),
            "img_per_s_min": min(speeds), "img_per_s_max": max(speeds),
            "peer_key": "k"}  # fmt: skip


def test_a_model_apart_from_its_flop_peers_is_flagged_and_others_are_not():
    rows = [_row("uni", 10, [230, 238, 240]), _row("alternating", 10, [30, 33, 35]),
            _row("bi", 20, [30, 31, 33]), _row("bi_shared", 20, [29, 34, 40])]  # fmt: skip
    flags = peer_flags(rows)
    assert "uni 238 (230-240) img/s vs alternating 33 (30-35) at equal FLOPs/img" in flags[0]
    assert "alternating" in flags[1] and "uni" in flags[1]
    assert flags[2:] == [None, None]  # overlapping ranges: within the spread
    close = [_row("uni", 10, [100, 101, 102]), _row("alternating", 10, [104, 105, 106])]
    assert peer_flags(close) == [None, None]  # disjoint but within PEER_RATIO: not flagged
    other = [{**rows[0], "peer_key": "k"}, {**rows[1], "peer_key": "other batch"}]
    assert peer_flags(other) == [None, None]  # not peers: a different step


def test_two_models_of_identical_cost_agree_within_their_spread_in_either_order(one_thread):
    cat = load_catalog()
    cfgs = [apply(cat.experiment("table2").config_for(cat.protocol("smoke"), "uni", seed),
                  {"train": {"device": "cpu"}}, "t") for seed in (0, 1)]  # fmt: skip
    for order in (cfgs, cfgs[::-1]):
        found = measure_models([(c, 10) for c in order], repeats=5)
        for m, name in zip(found, "ab", strict=True):
            m.update(name=name, flops=1)
        a, b = found
        assert a["img_per_s_min"] <= b["img_per_s_max"], (a["img_per_s_repeats"], b)
        assert b["img_per_s_min"] <= a["img_per_s_max"], (b["img_per_s_repeats"], a)
        assert peer_flags(found) == [None, None]
        assert a["warmup_steps"] == b["warmup_steps"] == 2 and len(a["img_per_s_repeats"]) == 5


def test_dry_run_measure_states_spread_load_and_flags(monkeypatch, capsys, one_thread):
    args = ["sweep", "table2", "--protocol", "smoke", "--dry-run", "--measure", "--device",
            "cpu", "--variants", "uni,alternating"]  # fmt: skip
    assert main([*args, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for r in rows:
        assert r["measured_img_per_s_min"] <= r["measured_img_per_s"] <= r["measured_img_per_s_max"]
        assert r["measured_repeats"] == 5 and r["warmup_steps"] == 2
        assert r["measured_load"]["cores"] and "load_1m_after" in r["measured_load"]
    fake = [{"img_per_s": s, "img_per_s_min": s - 1, "img_per_s_max": s + 1, "device": "cpu",
             "suggested_micro_batch": 32, "warmup_steps": 2} for s in (32.7, 238.2)]  # fmt: skip
    monkeypatch.setattr(plan, "measure_models", lambda models, repeats: [dict(f) for f in fake])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 warm-up steps of each model, then 5 interleaved timed steps" in out
    assert "(32-34)" in out and "measured under 1-min load average" in out
    assert "flag: uni 33 (32-34) img/s vs alternating 238 (237-239) at equal FLOPs/img" in out
