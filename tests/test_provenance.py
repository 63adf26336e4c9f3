"""Every number in a report is what its runs did: fingerprints, protocols apart, subsets,
exit codes, early one-line checks, the report's setting from the run records."""

from __future__ import annotations

import ast
import csv
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from tests.data_fixtures import make_tree, write_jpeg  # noqa: E402
from tests.ports import free_port  # noqa: E402
from tests.postgres import REPO, run_cli  # noqa: E402

SMOKE = ["--protocol", "smoke", "--plain"]
FAST = ["--set", "data.train_samples=64", "--set", "data.val_samples=32"]


def _rows(exp_dir: Path) -> list[dict]:
    return list(csv.DictReader(open(exp_dir / "runs.csv")))


def _ok(done) -> None:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_changed_config_stops_before_training_and_rerun_retrains(tmp_path):
    args = [
        "sweep",
        "table2",
        "--variants",
        "alternating",
        *SMOKE,
        *FAST,
        "--results",
        str(tmp_path),
    ]
    _ok(run_cli(*args))
    exp = tmp_path / "smoke" / "table2"
    report = (exp / "report.md").read_text()
    assert "- epochs: 2" in report
    bookkeeping = run_cli(*args, "--set", "train.log_every=7", "--set", "train.ckpt_every=2")
    _ok(bookkeeping)  # not science: the finished run is reused, nothing is trained
    assert not re.search(r"\d+ epochs? x", bookkeeping.stdout)
    changed = run_cli(*args, "--set", "train.epochs=1")
    assert changed.returncode == 1
    assert "alternating-s0 (complete): train.epochs 2 -> 1" in changed.stderr
    assert "--rerun" in changed.stderr and "Traceback" not in changed.stderr
    assert not re.search(r"\d+ epochs? x", changed.stdout)  # nothing trained
    assert (exp / "report.md").read_text() == report  # report unchanged
    rerun = run_cli(*args, "--set", "train.epochs=1", "--rerun")
    _ok(rerun)
    assert "- epochs: 1" in (exp / "report.md").read_text()
    assert _rows(exp)[0]["epochs"] == "1"


def test_protocols_keep_separate_runs_studies_and_reports(tmp_path):
    base = ["sweep", "table3", "--variants", "avg", "--plain", *FAST, "--results", str(tmp_path)]
    _ok(run_cli(*base, "--protocol", "smoke"))
    demo = ["--protocol", "demo", "--set", "model.size=nano", "--set", "train.epochs=1"]
    _ok(run_cli(*base, *demo))
    for protocol in ("smoke", "demo"):
        exp = tmp_path / protocol / "table3"
        assert json.loads((exp / "experiment.json").read_text())["protocol"] == protocol
        rows = _rows(exp)
        assert [(r["protocol"], r["state"]) for r in rows] == [(protocol, "COMPLETE")]
        assert (exp / "report.md").exists() and (exp / "optuna.journal").exists()
    status = run_cli("status", "table3", "--protocol", "smoke", "--results", str(tmp_path))
    assert "table3@smoke: COMPLETE 1" in status.stdout


def test_subsets_keep_earlier_runs_in_runs_csv_and_report(tmp_path):
    common = ["sweep", "table2", *SMOKE, *FAST, "--results", str(tmp_path)]
    _ok(run_cli(*common, "--variants", "uni,alternating"))
    _ok(run_cli(*common, "--variants", "alternating", "--rerun"))
    _ok(run_cli(*common, "--variants", "alternating", "--seeds", "3"))
    exp = tmp_path / "smoke" / "table2"
    points = {(r["variant"], r["seed"], r["state"]) for r in _rows(exp)}
    assert points == {("uni", "0", "COMPLETE"), ("alternating", "0", "COMPLETE"),
                      ("alternating", "3", "COMPLETE")}  # fmt: skip
    report = (exp / "report.md").read_text()
    assert "3 runs (3 complete)" in report and "seeds: 0, 3" in report
    uni = json.loads((exp / "runs" / "uni-s0" / "result.json").read_text())
    assert uni["pooling"] == "last"  # the row's own pooling (as the paper's uni config) ...
    assert not any(d.startswith("model.pooling") for d in uni["deviations"])  # ... no deviation
    assert any(d.startswith("train.epochs: 2") for d in uni["deviations"])
    assert "Top-5 (%)" not in report  # 4 classes: top-5 says nothing


def test_missing_data_root_fails_once_before_any_trial_and_in_dry_run(tmp_path):
    missing = str(tmp_path / "nowhere")
    args = ["sweep", "table2", *SMOKE, "--set", "data.dataset=imagefolder",
            "--set", f"data.root={missing}", "--results", str(tmp_path / "res")]  # fmt: skip
    for extra in ([], ["--dry-run"]):
        done = run_cli(*args, *extra)
        assert done.returncode == 2, done.stderr[-2000:]
        lines = [ln for ln in done.stderr.splitlines() if "error" in ln]
        assert len(lines) == 1 and missing in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "res").exists()  # no half-made folder


def test_unreachable_storage_is_one_line_with_masked_url_and_leaves_nothing(tmp_path):
    url = f"postgresql://vil:secret@127.0.0.1:{free_port()}/vil"  # nobody listens there
    done = run_cli("sweep", "table2", *SMOKE, "--storage", url, "--results", str(tmp_path / "r"))
    assert done.returncode == 1
    err = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "vil:***@127.0.0.1" in err[0] and "secret" not in done.stderr
    assert not (tmp_path / "r").exists()


def _folder_with_ten_classes(root: Path) -> Path:
    classes = [f"class{i:02d}" for i in range(10)]
    make_tree(root, classes, n_train=4, n_val=2)
    (root / "train" / classes[0] / "broken.JPEG").write_bytes(b"not an image")
    write_jpeg(root / "train" / classes[1] / "extra.JPEG", 99)
    return root


def test_image_folder_report_lists_its_classes_counts_and_skipped_files(tmp_path):
    root = _folder_with_ten_classes(tmp_path / "folder")
    sets = ["data.dataset=imagefolder", f"data.root={root}", "data.img_size=32",
            f"data.cache_dir={tmp_path / 'c'}"]  # fmt: skip
    done = run_cli("sweep", "table3", "--variants", "avg", *SMOKE, "--results", str(tmp_path / "r"),
                   *(x for s in sets for x in ("--set", s)))  # fmt: skip
    _ok(done)
    exp = tmp_path / "r" / "smoke" / "table3"
    report = (exp / "report.md").read_text()
    assert "- classes: 10" in report and "class00, class01" in report
    assert "- class list: —" in report and "class list: vil" not in report
    assert (exp / "classes.txt").read_text().split() == [f"class{i:02d}" for i in range(10)]
    counts = list(csv.DictReader(open(exp / "data_counts.csv")))
    assert {r["class"]: r["train"] for r in counts}["class01"] == "5"
    skipped = list(csv.DictReader(open(exp / "skipped_files.csv")))
    assert len(skipped) == 1 and skipped[0]["path"].endswith("broken.JPEG")
    assert "skipped files: 1" in report
    assert "Top-5 (%)" in report  # 10 classes; with <= 5 classes top-5 is hidden (subset test)


def test_run_record_fields_are_declared_in_one_module():
    """No other module declares a list of the record's field names (one schema, one home):
    module- and class-level constants holding 4 or more of them would be a second schema."""
    from ablations.schema.record import CSV_COLUMNS

    fields = set(CSV_COLUMNS)
    offenders = []
    for path in (REPO / "ablations").rglob("*.py"):
        if path.name == "runs.py":
            continue
        tree = ast.parse(path.read_text())
        tops = [*tree.body, *(n for c in tree.body if isinstance(c, ast.ClassDef) for n in c.body)]
        for stmt in (n for n in tops if isinstance(n, ast.Assign | ast.AnnAssign)):
            for node in ast.walk(stmt):
                if isinstance(node, ast.Tuple | ast.List | ast.Set):
                    names = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                    if len(names & fields) >= 4:
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders


def test_result_files_follow_the_users_umask(tmp_path):
    """Shared results folders: files are group-readable under the usual umask (not 0600)."""
    import os

    from ablations.schema.files import write_json

    old = os.umask(0o002)
    try:
        write_json(tmp_path / "result.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == 0o664
