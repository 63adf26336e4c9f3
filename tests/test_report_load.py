"""Throughput and train time are compared only between runs timed under similar machine load
(ablations/report/machine_load.py): folders of run records with the loads they recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from ablations.report import build_report
from ablations.report.load import load_experiment
from ablations.report.machine_load import LOAD_MARGIN, MARK, check
from ablations.report.render import to_markdown
from ablations.report.tables import main_frame, main_table
from ablations.schema.record import RunRecord, read_all, write_runs_csv
from ablations.train.record import record_load

SEEDS = [0, 1, 2]
TOP1 = {"uni": [60.0, 61.5, 62.0], "alternating": [70.2, 71.0, 71.9]}
SPEED = {"uni": 87.0, "alternating": 22.0}  # the figures for models of equal FLOPs
NOT_COMPARABLE = "not comparable"
NOSORT = ' nosort"'  # the class of a header the page does not sort


def write_folder(root: Path, loads: dict[str, float], cpus: dict | None = None,
                 threads: dict | None = None, recorded: bool = True) -> Path:  # fmt: skip
    """uni and alternating, three complete seeds each, timed under ``loads[variant]`` (the
    mean 1-minute load average) on ``cpus[variant]`` cores (default 2)."""
    exp_dir = root / "table2"
    meta = {"experiment": "table2", "axis": "traversal", "reference": "alternating",
            "variants": list(TOP1), "seeds": SEEDS, "protocol": "smoke"}  # fmt: skip
    exp_dir.mkdir(parents=True)
    (exp_dir / "experiment.json").write_text(json.dumps(meta))
    for variant, top1 in TOP1.items():
        for seed, acc in zip(SEEDS, top1, strict=True):
            load = {"loadavg_1m_mean": loads[variant], "loadavg_1m_samples": 3,
                    "cpus": (cpus or {}).get(variant, 2),
                    "threads": (threads or {}).get(variant, 1), "concurrent_trials": 1}  # fmt: skip
            rec = RunRecord(experiment="table2", protocol="smoke", variant=variant, seed=seed,
                            traversal=variant, state="COMPLETE", top1=acc, params=5.9e6,
                            flops=1.1e9, num_classes=10, val_images=500, device="cpu",
                            img_per_s=SPEED[variant], train_time_s=6400.0 / SPEED[variant],
                            config={"model": {"traversal": variant}},
                            load=load if recorded else {})  # fmt: skip
            rec.write(exp_dir / "runs" / f"{variant}-s{seed}")
    write_runs_csv(exp_dir / "runs.csv", read_all(exp_dir))
    return exp_dir


def _table(exp_dir: Path):
    exp = load_experiment(exp_dir)
    frame = main_frame(exp)
    return exp, frame, main_table(exp, frame)


def _col(table, header: str) -> int:
    return table.headers.index(header)


def test_loads_that_differ_mark_time_and_throughput_and_never_rank_them(tmp_path):
    exp_dir = write_folder(tmp_path, {"uni": 1.0, "alternating": 8.0})  # slowdown 1 vs 4
    exp, frame, table = _table(exp_dir)
    speed = [_col(table, h) for h in ("Train time", "img/s", "Load (1-min avg)")]
    assert table.unranked == speed  # the HTML page does not sort on them
    for row in table.rows:
        assert row[speed[0]].text.endswith(MARK) and row[speed[1]].text.endswith(MARK)
        assert not any(row[i].bold for i in speed)
    loads = {r[0].text.rstrip("†"): r[speed[2]].text for r in table.rows}
    want = "on 2 cores, 1 other trial running"  # the records' concurrent_trials
    assert loads == {"uni": f"1.0 {want}", "alternating": f"8.0 {want}"}
    note = next(n for n in table.footnotes if n.startswith(MARK))
    assert "measured under load 1.0 (uni-s0) to 8.0 (alternating-s0) on 2 cores" in note
    assert NOT_COMPARABLE in note and "not ranked" in note
    assert not frame["speed_comparable"].any()
    assert list(frame["load_1m"]) == [1.0, 8.0]


def test_loads_that_agree_leave_no_mark(tmp_path):
    # 4.0 vs 4.8 on 2 cores: slowdowns 2.0 and 2.4, within the margin
    assert 2.4 <= 2.0 * (1 + LOAD_MARGIN)
    exp_dir = write_folder(tmp_path, {"uni": 4.0, "alternating": 4.8})
    exp, frame, table = _table(exp_dir)
    assert check(exp).comparable and table.unranked == []
    assert "Load (1-min avg)" not in table.headers
    text = to_markdown(table)
    assert MARK not in text and NOT_COMPARABLE not in text
    assert frame["speed_comparable"].all()
    build_report(exp_dir)
    md, html = (exp_dir / "report.md").read_text(), (exp_dir / "report.html").read_text()
    assert MARK not in md and NOSORT not in html


def test_quiet_machines_compare_whatever_their_load_below_the_cores(tmp_path):
    exp_dir = write_folder(tmp_path, {"uni": 0.3, "alternating": 1.9})  # each thread a core
    assert check(load_experiment(exp_dir)).comparable


def test_just_past_the_margin_is_marked(tmp_path):
    # slowdowns 2.0 and 2.6: 30% apart
    exp_dir = write_folder(tmp_path, {"uni": 4.0, "alternating": 5.2})
    reasons = check(load_experiment(exp_dir)).reasons
    assert len(reasons) == 1 and f"more than {LOAD_MARGIN:.0%} apart" in reasons[0]


@pytest.mark.parametrize(
    ("kw", "what"),
    [({"cpus": {"uni": 16}}, "cores (16, 2)"), ({"threads": {"uni": 4}}, "torch threads (1, 4)")],
)
def test_other_cores_or_threads_are_not_comparable(tmp_path, kw, what):
    exp_dir = write_folder(tmp_path, {"uni": 0.5, "alternating": 0.5}, **kw)
    reasons = check(load_experiment(exp_dir)).reasons
    assert any(what in r for r in reasons), reasons


def test_no_load_recorded_is_named_and_not_ranked(tmp_path):
    exp_dir = write_folder(tmp_path, {"uni": 1.0, "alternating": 1.0}, recorded=False)
    exp, _, table = _table(exp_dir)
    assert MARK not in to_markdown(table)  # nothing known to differ ...
    assert table.unranked == [_col(table, "Train time"), _col(table, "img/s")]  # ... nor to agree
    note = next(n for n in table.footnotes if "no load recorded" in n)
    assert "uni-s0" in note and "alternating-s2" in note


def test_md_and_html_carry_the_same_marking(tmp_path):
    exp_dir = write_folder(tmp_path, {"uni": 1.0, "alternating": 8.0})
    build_report(exp_dir)
    md, html = (exp_dir / "report.md").read_text(), (exp_dir / "report.html").read_text()
    exp, _, table = _table(exp_dir)
    assert to_markdown(table) in md
    note = next(n for n in table.footnotes if n.startswith(MARK))
    assert note in md and note.replace("'", "&#39;") in html
    assert html.count(NOSORT) == 3  # Train time, img/s, Load
    assert "loadavg_1m_mean 8.0" in html  # each run's record shows its load
    main = pd.read_csv(exp_dir / "table_main.csv")
    assert not main["speed_comparable"].any() and list(main["load_1m"]) == [1.0, 8.0]


def test_record_load_samples_the_run_and_counts_running_neighbours(tmp_path, monkeypatch):
    RunRecord(variant="bi", state="RUNNING").write(tmp_path / "bi-s0")
    RunRecord(variant="quad", state="COMPLETE").write(tmp_path / "quad-s0")
    rec, samples = RunRecord(), iter([2.0, 4.0, 9.0])
    monkeypatch.setattr(os, "getloadavg", lambda: (next(samples), 0.0, 0.0))
    for when in ("start", "epoch", "end"):
        record_load(rec, tmp_path / "uni-s0", when)
    assert rec.load["loadavg_1m_start"] == 2.0 and rec.load["loadavg_1m_end"] == 9.0
    assert rec.load["loadavg_1m_mean"] == 5.0 and rec.load["loadavg_1m_samples"] == 3
    assert rec.load["concurrent_trials"] == 1 == rec.load["concurrent_trials_end"]
    assert rec.load["cpus"] == os.cpu_count()
