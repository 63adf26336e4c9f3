"""A user's own parts reach every command and worker: docs/own-parts.md's traversal file,
given with ``--import`` or experiments.yaml's ``imports:``, is swept by two worker processes,
reported, recorded (its hash in the fingerprint), and a changed file is another experiment."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.postgres import cli_env

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = """default_protocol: tiny
protocols:
  tiny:
    model: {size: nano, patch_size: 4}
    data: {img_size: 16, num_classes: 4, train_samples: 64, val_samples: 32, augment: none,
           mixup_alpha: 0.0, cutmix_alpha: 0.0}
    train: {epochs: 1, batch_size: 32, warmup_epochs: 0.5, eval_every: 1}
experiments:
  diag:
    axis: traversal
    reference: alternating
    seeds: [0, 1]
    variants: [alternating, diagonal_alternating]
"""


def _traversal_file() -> str:
    """docs/own-parts.md's "A traversal" example, as printed."""
    text = (REPO / "docs" / "own-parts.md").read_text()
    section = text.split("## Adding a traversal, a pooling or a dataset", 1)[1].split("\n## ")[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[0]


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ablations.app.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def _setup(tmp: Path, imports: str = "") -> None:
    (tmp / "my_parts.py").write_text(_traversal_file())
    (tmp / "exp.yaml").write_text(imports + EXPERIMENTS)


def test_imported_traversal_is_swept_by_two_workers_reported_and_fingerprinted(tmp_path):
    _setup(tmp_path)
    args = ["sweep", "diag", "--experiments", "exp.yaml", "--results", "res", "--plain"]
    done = _cli(tmp_path, *args, "--import", "my_parts.py", "--workers", "2")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    exp = tmp_path / "res" / "tiny" / "diag"
    log = (exp / "logs" / "worker-1.log").read_text()
    assert "trials done" in log and "error" not in log, log[-2000:]  # the worker had the part
    assert "diagonal_alternating" in (exp / "report.md").read_text()
    rec = json.loads((exp / "runs" / "diagonal_alternating-s0" / "result.json").read_text())
    (imp,) = rec["imports"]
    assert imp["module"] == "my_parts" and imp["file"] == str(tmp_path / "my_parts.py")
    assert imp["registered"]["traversal"] == ["diagonal_alternating", "bi_diagonal"]
    assert rec["science"]["imports.my_parts"] == imp["sha256"] and rec["state"] == "COMPLETE"
    ref = json.loads((exp / "runs" / "alternating-s0" / "result.json").read_text())
    assert not any(k.startswith("imports.") for k in ref["science"])  # bundled: unchanged
    assert "imports.my_parts" not in (exp / "report.md").read_text()  # comparable rows
    with open(tmp_path / "my_parts.py", "a") as f:
        f.write("# changed\n")
    again = _cli(tmp_path, *args, "--import", "my_parts.py")
    assert again.returncode != 0  # the finished runs were made with another file
    assert "diagonal_alternating-s0 (complete): imports.my_parts" in again.stderr
    stale = [line.split()[0] for line in again.stderr.splitlines() if "(complete)" in line]
    assert stale == ["diagonal_alternating-s0", "diagonal_alternating-s1"]  # bundled: kept


def test_experiments_file_imports_and_missing_ones(tmp_path):
    _setup(tmp_path, "imports: [my_parts.py]\n")
    done = _cli(tmp_path, "sweep", "diag", "--experiments", "exp.yaml", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert {r["variant"] for r in json.loads(done.stdout)} == {"alternating",
                                                               "diagonal_alternating"}  # fmt: skip
    listed = _cli(tmp_path, "list", "--import", "my_parts", "--json")  # a module on sys.path
    assert listed.returncode == 0, listed.stderr
    assert "bi_diagonal" in json.loads(listed.stdout)["traversals"]
    missing = _cli(tmp_path, "list", "--import", "no_such_module_i33")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "vil-ablate: error: --import: no module or file 'no_such_module_i33'; valid: a module "
        "on sys.path (PYTHONPATH) or a path to a .py file"
    ]
    (tmp_path / "bad.yaml").write_text("imports: [gone.py]\n" + EXPERIMENTS)
    bad = _cli(tmp_path, "sweep", "diag", "--experiments", "bad.yaml", "--dry-run")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert f"bad.yaml: imports[0]: no such file '{tmp_path / 'gone.py'}'" in bad.stderr


def test_child_argv_and_env_carry_the_active_imports(tmp_path):
    (tmp_path / "my_parts.py").write_text(_traversal_file())
    code = (
        "import json\n"
        "from ablations.schema import imports\n"
        "from ablations.app.sweep_command import child_argv\n"
        f"imports.import_all(['my_parts.py'], base=__import__('pathlib').Path({str(tmp_path)!r}))\n"
        "print(json.dumps([imports.child_argv(), imports.child_env(),"
        " child_argv(['sweep', 'x', '--import', 'my_parts.py', '--workers', '2'])]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    argv, env, child = json.loads(done.stdout)
    path = str(tmp_path / "my_parts.py")
    assert argv == ["--import", path] and env == {"VIL_ABLATE_IMPORTS": path}
    assert child[3:] == ["sweep", "x", "--import", path, "--workers", "1", "--child", "--plain"]
