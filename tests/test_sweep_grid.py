"""A sweep never loses a grid point silently (issue 35): odd --seeds / --variants lists,
``report`` before any sweep, read-only results folders, and resuming a subset of the grid."""

from __future__ import annotations

import csv
import json
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from ablations.app.cli import main  # noqa: E402
from tests.postgres import REPO, run_cli, start_cli  # noqa: E402
from tests.read_only import read_only  # noqa: E402  (PEP 578: root ignores chmod)

DRY = ["sweep", "table2", "--protocol", "smoke", "--dry-run", "--variants", "uni"]


@pytest.mark.parametrize(
    "seeds, says",
    [
        ("=-1,0,0", "'-1' is not one"),
        ("=0,1,0", "0 given twice"),
        ("=", "--seeds: empty"),
        ("=0,,1", "'' is not one"),
        ("=1.5", "'1.5' is not one"),
    ],  # fmt: skip
)
def test_seeds_are_distinct_non_negative_integers(capsys, tmp_path, seeds, says):
    assert main([*DRY, "--results", str(tmp_path), f"--seeds{seeds}"]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())


def test_variants_listed_twice_or_empty_are_refused(capsys, tmp_path):
    assert main([*DRY[:-1], "uni,bi,uni", "--results", str(tmp_path)]) == 2
    assert "--variants: uni given twice" in capsys.readouterr().err
    assert main([*DRY[:-1], "", "--results", str(tmp_path)]) == 2
    assert "--variants: expected comma-separated variant names" in capsys.readouterr().err


def test_seeds_with_spaces_still_work(capsys, tmp_path):
    assert main([*DRY, "--results", str(tmp_path), "--seeds", " 0, 3", "--json"]) == 0
    assert '"trial": "uni-s3"' in capsys.readouterr().out


def test_report_before_any_sweep_names_the_command_that_makes_one(capsys, tmp_path):
    where = ["table2", "--protocol", "smoke", "--results", str(tmp_path), "--seeds", "0,1"]
    assert main(["report", *where]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no sweep yet" in err, err
    assert f"vil-ablate sweep table2 --protocol smoke --results {tmp_path} --seeds 0,1" in err


def _three(tmp_path: Path) -> Path:
    """uni, bi, alternating x 2 seeds; bi trains 8 epochs so that Ctrl-C lands inside it."""
    spec = yaml.safe_load((REPO / "ablations" / "experiments.yaml").read_text())
    bi = {"name": "bi", "set": {"train.epochs": 8}}
    spec["experiments"] = {"three": {
        "axis": "traversal", "reference": "alternating", "seeds": [0, 1],
        "variants": [{"name": "uni", "pooling": "last"}, bi, "alternating"],
    }}  # fmt: skip
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _states(exp: Path) -> dict[str, str]:
    rows = csv.DictReader(open(exp / "runs.csv"))
    return {f"{r['variant']}-s{r['seed']}": r["state"] for r in rows}


@pytest.mark.slow
def test_resuming_a_subset_leaves_the_other_points_to_the_full_grid(tmp_path):
    results = tmp_path / "r"
    base = ["sweep", "three", "--experiments", str(_three(tmp_path)), "--protocol", "smoke",
            "--results", str(results), "--plain", "--no-report"]  # fmt: skip
    exp = results / "smoke" / "three"
    proc = start_cli(*base, log=tmp_path / "first.log")
    ckpt = exp / "runs" / "bi-s0" / "checkpoint.pt"
    deadline = time.time() + 180
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130, (tmp_path / "first.log").read_text()[-3000:]
    assert _states(exp) == {"uni-s0": "COMPLETE", "uni-s1": "COMPLETE", "bi-s0": "INTERRUPTED",
                            "bi-s1": "WAITING", "alternating-s0": "WAITING",
                            "alternating-s1": "WAITING"}  # fmt: skip
    part = run_cli(*base, "--variants", "uni,alternating")
    assert part.returncode == 0, part.stdout[-2000:] + part.stderr[-2000:]
    assert "KeyError" not in part.stderr and "bi-s0: epoch" not in part.stderr
    assert "not named by this command, left as they were: bi-s0 INTERRUPTED, bi-s1 WAITING" in (
        part.stderr)  # fmt: skip
    states = _states(exp)
    assert states["bi-s0"] == "INTERRUPTED" and states["bi-s1"] == "WAITING", states
    assert {states[f"alternating-s{s}"] for s in (0, 1)} == {"COMPLETE"}
    full = run_cli(*base)
    assert full.returncode == 0, full.stdout[-2000:] + full.stderr[-2000:]
    assert set(_states(exp).values()) == {"COMPLETE"}
    resumed = json.loads((exp / "runs" / "bi-s0" / "result.json").read_text())
    assert resumed["state"] == "COMPLETE" and resumed["resumed_from"]["global"] > 0
    fresh = json.loads((exp / "runs" / "bi-s1" / "result.json").read_text())
    assert fresh["state"] == "COMPLETE" and fresh["resumed_from"]["global"] == 0
    assert "uni-s0: epoch" not in full.stderr + full.stdout  # finished points: not retrained


def _broken_folder(tmp_path: Path, capsys) -> tuple[list[str], Path]:
    """The folder today's bug left: uni-s0 COMPLETE, bi-s0's trial told FAIL (KeyError) by a
    worker that had no config for it (no run record), alternating-s0 asked for, never queued."""
    from ablations.schema.files import read_json, write_json
    from ablations.study import sweep_study
    from ablations.sweep import SweepOptions, resolve

    where = ["table2", "--protocol", "smoke", "--results", str(tmp_path), "--seeds", "0"]
    assert main(["sweep", *where, "--variants", "uni", "--no-report", "--plain"]) == 0
    s = resolve(SweepOptions("table2", "smoke", tmp_path, seeds=[0], variants=["bi"]), False)
    study, lock = sweep_study.open_study(s.place)
    sweep_study.enqueue(study, lock, s.fingerprints, initial=True)
    trial = sweep_study.next_trial(study, lock, 60, s.fingerprints)
    sweep_study.tell(study, trial, None, "error", "KeyError: Point(variant='bi', seed=0)")
    exp = s.exp_dir
    meta = read_json(exp / "experiment.json")
    meta["points"] += ["bi-s0", "alternating-s0"]
    meta["variants"] += ["bi", "alternating"]
    write_json(exp / "experiment.json", meta)
    capsys.readouterr()
    return where, exp


def test_status_and_report_agree_on_failed_and_missing_points(tmp_path, capsys, one_thread):
    import pandas as pd

    where, exp = _broken_folder(tmp_path, capsys)
    assert main(["status", *where]) == 0
    shown = {tuple(line.split()[:3]) for line in capsys.readouterr().out.splitlines()}
    want = {("uni", "s0", "COMPLETE"), ("bi", "s0", "FAIL"), ("alternating", "s0", "MISSING")}
    assert want <= shown
    assert main(["report", *where]) == 0
    status = pd.read_csv(exp / "table_status.csv").set_index("variant")
    assert (status.loc["bi", "fail"], status.loc["alternating", "missing"]) == (1, 1)
    fails = pd.read_csv(exp / "table_failures.csv").set_index("variant")
    assert fails.loc["bi", "state"] == "FAIL" and "KeyError" in fails.loc["bi", "fail_reason"]
    assert fails.loc["alternating", "state"] == "MISSING"
    page = (exp / "report.md").read_text()
    assert "No failed run" not in page and "| alternating | 0 | MISSING |" in page


def test_exit_0_only_when_every_point_of_the_grid_completed(tmp_path, capsys, one_thread):
    where, _ = _broken_folder(tmp_path, capsys)
    grid = [*where, "--variants", "uni,bi", "--no-report", "--plain"]
    assert main(["sweep", *grid]) == 1  # bi-s0 failed: kept (a failure is a result) -> exit 1
    err = capsys.readouterr().err
    assert "FAILED bi-s0: KeyError" in err
    assert "not named by this command, left as they were: alternating-s0 MISSING" in err
    again = f"vil-ablate sweep table2 --protocol smoke --results {tmp_path} --variants uni,bi"
    assert f"recover them with: {again} --seeds 0 --retry-failed" in err
    assert main(["sweep", *grid, "--retry-failed"]) == 0
    assert "not complete" not in capsys.readouterr().err


def test_the_simulated_read_only_folder_refuses_writes(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with read_only(tmp_path):
        assert (tmp_path / "a.txt").read_text() == "x"
        for write in (lambda: (tmp_path / "b.txt").write_text("y"),
                      lambda: (tmp_path / "d").mkdir(), lambda: (tmp_path / "a.txt").unlink(),
                      lambda: open(tmp_path / "a.txt", "a")):  # fmt: skip
            with pytest.raises(PermissionError):
                write()
    from ablations.schema.files import unwritable

    with read_only(tmp_path):
        assert "Read-only file system" in unwritable(tmp_path / "not" / "yet")
    assert unwritable(tmp_path / "not" / "yet") is None and not any(tmp_path.glob(".vil*"))


def test_reading_a_read_only_results_folder_needs_no_writing(tmp_path, capsys, one_thread):
    results = tmp_path / "results"
    where = ["table2", "--protocol", "smoke", "--results", str(results), "--seeds", "0"]
    assert main(["sweep", *where, "--variants", "uni", "--plain"]) == 0
    exp = results / "smoke" / "table2"
    before = sorted((p, p.stat().st_mtime_ns) for p in results.rglob("*"))
    capsys.readouterr()
    with read_only(results):
        assert main(["status", *where]) == 0
        out = capsys.readouterr().out
        assert "COMPLETE" in out.splitlines()[0] and "not refreshed" in out
        assert main(["report", *where, "--stdout"]) == 0
        assert capsys.readouterr().out.startswith("# table2: ViL traversal ablation report")
        assert main(["report", *where, "--out", str(tmp_path / "elsewhere")]) == 0
        assert (tmp_path / "elsewhere" / "report.md").is_file()
        assert (tmp_path / "elsewhere" / "runs.csv").is_file()
        capsys.readouterr()
        assert main(["compare", str(exp), str(exp), "--out", str(tmp_path / "cmp")]) == 0
        assert (tmp_path / "cmp.md").is_file()
        run = ["influence", "--run", str(exp / "runs" / "uni-s0"), "--images", "2", "--probes",
               "1", "--inputs", "random"]  # fmt: skip
        assert main([*run, "--out", str(tmp_path / "flow")]) == 0
        capsys.readouterr()
        for writes in (["report", *where], ["sweep", *where], ["sweep", *where, "--dry-run"],
                       run):  # fmt: skip
            assert main(writes) == 2, writes
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "Read-only file system" in err, (writes, err)
    assert sorted((p, p.stat().st_mtime_ns) for p in results.rglob("*")) == before


def test_a_results_path_that_is_a_file_fails_sweep_and_dry_run_alike(tmp_path, capsys):
    (tmp_path / "results").write_text("not a folder")
    where = ["table2", "--protocol", "smoke", "--results", str(tmp_path / "results")]
    for cmd in (["sweep", *where], ["sweep", *where, "--dry-run"]):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path / 'results'} is a file, not a folder" in err and err.count("\n") == 1
