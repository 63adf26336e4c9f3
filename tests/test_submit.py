"""``vil-ablate submit``: bad input is one line and exit 2 before anything is submitted; a dry
run prints submitit's SLURM parameters and the grid; the tasks get the sweep's flags; and, with
real processes through submitit's LocalExecutor (no SLURM): 2 workers x 2 ranks (gloo, CPU)
train every grid point exactly once on the journal and on PostgreSQL, submitit's ranks step as
one process on the combined batch, and a preempted (timed-out) task is requeued and resumes
its trial from the checkpoint."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from ablations.app import submit_checks  # noqa: E402
from ablations.app.cli import main  # noqa: E402
from ablations.app.submit_args import status_argv, task_argv  # noqa: E402
from tests.postgres import REPO, cli_env, new_database, pg_url, run_cli, start_cli  # noqa: E402, F401

SMOKE = ["table2", "--protocol", "smoke", "--variants", "uni", "--seeds", "0"]


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """srun, sbatch (records that it ran) and sinfo (partitions gpu*, cpu) on PATH; returns
    the file sbatch would write."""
    bin_dir, called = tmp_path / "bin", tmp_path / "sbatch-called"
    bin_dir.mkdir()
    scripts = {"srun": "exit 0", "sinfo": "printf 'gpu*\\ncpu\\n'",
               "sbatch": f"echo \"$@\" >> {called}; echo 'Submitted batch job 1'"}  # fmt: skip
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return called


@pytest.fixture
def shared(monkeypatch):
    """Every path counts as on a shared filesystem (this machine has none to offer)."""
    monkeypatch.setattr(submit_checks, "local_only", lambda path, shared_fs=False: None)


def _submit(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["submit", *args])
    out, err = capsys.readouterr()
    return code, out, err


# --- what the tasks run -------------------------------------------------------------------


def test_tasks_get_the_sweeps_flags_and_no_submit_flag():
    argv = ["--import", "my.mod", "submit", "table2", "--workers", "3", "--nodes=2", "--set",
            "train.epochs=1", "--slurm-extra", "mem_gb=8", "--wait", "--rerun", "--future-flag",
            "v", "--time", "1:00:00", "--retry-failed", "--grace", "30"]  # fmt: skip
    kept = ["--import", "my.mod", "table2", "--set", "train.epochs=1", "--future-flag", "v",
            "--grace", "30"]  # fmt: skip
    assert task_argv(argv) == [
        *kept[:2],
        "sweep",
        *kept[2:],
        "--workers",
        "1",
        "--child",
        "--plain",
    ]
    assert status_argv(argv) == [*kept[:2], "status", *kept[2:]]


@pytest.mark.parametrize(("text", "minutes"), [("48:00:00", 2880), ("1-00:00:00", 1440),
                         ("90", 90), ("00:00:30", 1), ("1:30", 2), ("2-12:00", 3600)])  # fmt: skip
def test_time_limits_in_sbatch_forms(text, minutes):
    assert submit_checks.parse_time(text) == minutes


def test_local_only_paths(monkeypatch):
    assert "node-local scratch" in submit_checks.local_only(Path("/dev/shm/x.journal"))
    assert "under /tmp" in submit_checks.local_only(Path("/tmp/results/x"), shared_fs=True)
    for fstype, shared in (("ext4", False), ("xfs", False), ("tmpfs", False), ("nfs4", True),
                           ("lustre", True), ("gpfs", True), ("fuse.unknown", True)):  # fmt: skip
        monkeypatch.setattr(submit_checks, "_mount", lambda p, t=fstype: ("/data", t))
        why = submit_checks.local_only(Path("/data/results"))
        assert (why is None) == shared, (fstype, why)
        # --shared-fs vouches for a local disk that other nodes mount, never for memory
        vouched = submit_checks.local_only(Path("/data/results"), shared_fs=True)
        assert (vouched is None) == (fstype != "tmpfs"), (fstype, vouched)


def test_submit_help_imports_neither_torch_nor_submitit():
    code = ("import sys\nfrom ablations.app.cli import main\ntry:\n    main(['submit', '--help'])\n"
            "except SystemExit:\n    pass\nprint(sorted(m for m in ('torch', 'submitit') "
            "if m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--gpus-per-node" in done.stdout and done.stdout.strip().endswith("[]")


# --- bad input: one line, exit 2, nothing submitted or written -----------------------------

BAD = [
    (["--time", "48h"], "--time: expected HH:MM:SS"),
    (["--slurm-extra", "colour=red"], "'colour' is not a submitit SLURM parameter; valid: "),
    (["--slurm-extra", "nodes=3"], "--slurm-extra nodes: set by --nodes"),
    (["--partition", "nope"], "'nope' is not a partition of this cluster; valid: cpu, gpu"),
    (
        ["--storage", "postgresql://u:pw@localhost:5432/db"],
        "localhost is this machine, not reachable from SLURM tasks",
    ),  # fmt: skip
    (["--storage", "sqlite:///study.db"], "SQLite cannot be shared by workers"),
    (["--workers", "0"], "--workers: expected an integer >= 1, got 0"),
]


@pytest.mark.parametrize(("extra", "message"), BAD, ids=[m[:24] for _, m in BAD])
def test_bad_input_is_one_line_before_submitting(extra, message, capsys, tmp_path, fake_slurm,
                                                 shared):  # fmt: skip
    res = tmp_path / "res"
    code, out, err = _submit(capsys, *SMOKE, "--results", str(res), "--time", "1:00:00", *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not res.exists() and not fake_slurm.exists()


def test_a_node_local_journal_or_results_folder_is_refused(capsys, tmp_path, fake_slurm):
    res = tmp_path / "res"  # under /tmp: node-local scratch on a cluster
    args = [*SMOKE, "--time", "1:00:00", "--nodes", "2"]
    code, _, err = _submit(capsys, *args, "--results", str(res))
    assert code == 2 and f"--results: {res} is under /tmp" in err, err
    assert "--nodes 2 (DDP ranks on 2 nodes) cannot share it" in err
    code, _, err = _submit(capsys, *args, "--results", str(res), "--storage", "/dev/shm/j.log")
    assert code == 2 and "--storage journal: /dev/shm/j.log is under /dev/shm" in err, err
    assert len(err.strip().splitlines()) == 1 and not res.exists() and not fake_slurm.exists()


def test_no_slurm_here_or_no_submitit_is_one_line(capsys, tmp_path, monkeypatch, shared):
    res = tmp_path / "res"
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun, no sbatch
    code, _, err = _submit(capsys, *SMOKE, "--results", str(res), "--time", "1:00:00")
    assert code == 2 and "srun and sbatch not found: this is not a SLURM login node" in err
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if not installed
    code, _, err = _submit(capsys, *SMOKE, "--results", str(res), "--time", "1:00:00")
    assert code == 2 and "submitit is not installed; pip install 'vil-ablate[cluster]'" in err
    assert len(err.strip().splitlines()) == 1 and not res.exists()


def test_dry_run_prints_the_sbatch_parameters_and_the_grid(capsys, tmp_path, fake_slurm,
                                                          shared):  # fmt: skip
    res = tmp_path / "res"
    code, out, err = _submit(
        capsys, "table2", "--protocol", "smoke", "--seeds", "0,1", "--variants", "uni,bi_shared",
        "--device", "cuda", "--results", str(res), "--workers", "3", "--nodes", "2",
        "--gpus-per-node", "4", "--partition", "gpu", "--time", "48:00:00", "--account", "lab",
        "--qos", "high", "--slurm-extra", "constraint=a100", "--slurm-extra", "cpus_per_task=16",
        "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    for line in ("nodes = 2", "ntasks_per_node = 4", "gpus_per_node = 4", "time = 2880",
                 "partition = gpu", "account = lab", "qos = high", "constraint = a100",
                 "cpus_per_task = 16", "array = 0-2", "job_name = vil-table2"):  # fmt: skip
        assert f"  {line}\n" in out, (line, out)
    assert "3 worker job(s) of 8 DDP rank(s) each" in out and "table2@smoke: 4 trials" in out
    assert all(p in out for p in ("uni-s0", "uni-s1", "bi_shared-s0", "bi_shared-s1"))
    assert not res.exists() and not fake_slurm.exists()  # nothing written, nothing submitted
    code, out, _ = _submit(capsys, *SMOKE, "--results", str(res), "--time", "1:00:00",
                           "--dry-run", "--json")  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["parameters"]["time"] == 60 and len(data["trials"]) == 1


# --- real processes: submitit's LocalExecutor, gloo on CPU ---------------------------------


def _local(results: Path, *extra: str) -> list[str]:
    return ["submit", "table2", "--protocol", "smoke", "--seeds", "0", "--device", "cpu",
            "--results", str(results), "--cluster", "local", "--gpus-per-node", "0",
            "--time", "00:10:00", "--wait", "--no-report", *extra]  # fmt: skip


def _study(results: Path, url: str | None) -> optuna.Study:
    journal = results / "smoke" / "table2" / "optuna.journal"
    storage = url or JournalStorage(JournalFileBackend(str(journal)))
    return optuna.load_study(study_name="table2@smoke", storage=storage)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["journal", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_two_workers_of_two_ranks_train_every_point_once(kind, tmp_path, request):
    url = new_database(request.getfixturevalue("pg_url")) if kind == "postgresql" else None
    args = _local(tmp_path, "--variants", "uni,alternating,bi_shared", "--workers", "2",
                  "--nodes", "2", "--rerun", *(["--storage", url] if url else []))  # fmt: skip
    t0 = time.time()
    done = run_cli(*args, timeout=600)
    print(f"\n2 workers x 2 ranks, 3 smoke points ({kind}): {time.time() - t0:.1f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 points, 2 worker(s) x 2 rank(s) submitted (local)" in done.stdout
    assert "watch: vil-ablate status table2 --protocol smoke --seeds 0" in done.stdout
    trials = _study(tmp_path, url).get_trials()
    points = Counter((t.user_attrs["variant"], t.user_attrs["seed"]) for t in trials)
    assert len(points) == 3 and set(points.values()) == {1}, points  # once each (--rerun too)
    assert {t.state.name for t in trials} == {"COMPLETE"}
    exp = tmp_path / "smoke" / "table2"
    rows = list(csv.DictReader(open(exp / "runs.csv")))
    assert len(rows) == 3 and {r["state"] for r in rows} == {"COMPLETE"}
    assert {r["world_size"] for r in rows} == {"2"} and {r["resumes"] for r in rows} == {"0"}
    logs = sorted((exp / "submitit").glob("*_log.out"))
    assert len(logs) == 4  # 2 jobs x 2 tasks


@pytest.mark.slow
def test_submitits_ranks_step_as_one_process_on_the_combined_batch(tmp_path, monkeypatch):
    import submitit

    from tests.test_train_ddp import assert_ranks_stepped_as_one_process

    monkeypatch.setenv("PYTHONPATH", cli_env()["PYTHONPATH"])  # tests.submit_probe importable
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ex = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="local")
    ex.update_parameters(nodes=1, tasks_per_node=2, timeout_min=5)
    from tests.submit_probe import ddp_step

    t0 = time.time()
    job = ex.submit(ddp_step, str(tmp_path))
    assert sorted(job.results()) == [0, 1]
    print(f"\nDDP step through submitit's local ranks: {time.time() - t0:.1f} s")
    assert_ranks_stepped_as_one_process(tmp_path)


def _wait_for(what, timeout: float, proc: subprocess.Popen, log: Path):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = what()
        if value:
            return value
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.1)
    raise AssertionError(f"timed out; log:\n{log.read_text()[-3000:]}")


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _trials(results: Path) -> list:
    try:
        return _study(results, None).get_trials()
    except (KeyError, OSError):
        return []


@pytest.mark.slow
def test_a_preempted_task_is_requeued_and_resumes_its_trial(tmp_path):
    exp, log = tmp_path / "smoke" / "table2", tmp_path / "submit.log"
    args = _local(tmp_path, "--variants", "uni", "--workers", "1", "--nodes", "2",
                  "--set", "train.epochs=8", "--set", "train.log_every=1")  # fmt: skip
    t0 = time.time()
    proc = start_cli(*args, log=log)
    metrics = exp / "runs" / "uni-s0" / "metrics.csv"
    _wait_for(lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 2, 300,
              proc, log)  # fmt: skip
    job = next((exp / "submitit").glob("*_submitted.pkl")).name.split("_")[0]
    tasks = _children(int(job))  # the local job's controller runs the two ranks
    assert len(tasks) == 2
    t_kill = time.time()
    for pid in tasks:  # what SLURM does before the time limit (and submitit's local controller)
        os.kill(pid, signal.SIGUSR2)

    def resumed():
        ts = _trials(tmp_path)
        return len(ts) == 2 and ts[1].state.name in ("RUNNING", "COMPLETE")

    _wait_for(resumed, 300, proc, log)
    t_resume = time.time()
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    print(f"\npreempted at {t_kill - t0:.1f} s; trial claimed again {t_resume - t_kill:.1f} s "
          f"after the signal; all done {time.time() - t_kill:.1f} s after it")  # fmt: skip
    first, second = _trials(tmp_path)
    assert first.state.name == "FAIL" and first.user_attrs["fail_kind"] == "interrupted"
    assert second.state.name == "COMPLETE" and second.user_attrs["resume"] is True
    rec = json.loads((exp / "runs" / "uni-s0" / "result.json").read_text())
    steps = 8 * 4  # 128 images / batch 32
    assert rec["state"] == "COMPLETE" and rec["resumes"] == 1 and rec["attempt"] == 2
    assert 4 <= rec["resumed_from"]["global"] < steps and rec["steps_done"] == steps
    rows = list(csv.DictReader(open(metrics)))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))  # no epoch twice, none lost
    assert [int(r["step"]) for r in rows] == list(range(4, steps + 1, 4))  # the count goes on
    rank0 = (exp / "submitit" / f"{job}_0_log.out").read_text()
    assert rank0.count("Starting with JobEnvironment") == 2  # the same job, requeued once


@pytest.mark.slow
def test_a_crashed_worker_fails_its_job_and_the_wait_names_its_log(tmp_path):
    """A worker that dies before training (here: an --import that raises in the tasks only)
    is a FAILED job, named with its log, and `--wait` exits 1 with the points left WAITING."""
    boom = tmp_path / "boom.py"
    boom.write_text(
        "import os\nif 'RANK' in os.environ:\n    raise RuntimeError('boom in a task')\n"
    )
    done = run_cli(*_local(tmp_path, "--workers", "1", "--nodes", "1", "--import", str(boom)),
                   timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    failed = [ln for ln in done.stderr.splitlines() if ln.startswith("job ")]
    assert len(failed) == 1 and "failed:" in failed[0] and "_log.err" in failed[0], failed
    assert "sweep worker 0, rank 0 exited with code 2" in failed[0]  # 2: a bad --import
    assert "WAITING uni-s0" in done.stderr
