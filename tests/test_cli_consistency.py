"""The CLI agrees with itself: shared flags, --results everywhere, paths its help names,
the protocol folder found, fast --help, whole descriptions, labelled tune lines, and
caches of another split are not called stale."""

from __future__ import annotations

import argparse
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from ablations.app.cli import build_parser, main
from ablations.app.progress import PlainProgress
from ablations.schema.catalog import load_catalog
from ablations.schema.config import ConfigError
from ablations.sweep.spec import experiment_dir

try:
    from data_fixtures import make_tree, write_jpeg
except ImportError:  # tests/ imported as a package
    from tests.data_fixtures import make_tree, write_jpeg

ROOT = Path(__file__).resolve().parents[1]


def test_status_and_report_take_the_sweeps_command_line(tmp_path, capsys):
    sweep = ["table2", "--protocol", "smoke", "--results", str(tmp_path), "--workers", "2",
             "--plain", "--heartbeat", "5", "--retry-failed", "--no-report"]  # fmt: skip
    assert main(["status", *sweep]) == 0
    assert "not started" in capsys.readouterr().out
    assert main(["report", *sweep]) == 2  # parsed; nothing swept yet (one line, exit 2)
    assert "holds no sweep" in capsys.readouterr().err


def test_paths_and_doctor_take_results(tmp_path):
    assert main(["paths", "--results", str(tmp_path), "--grid", "3x3", "uni"]) == 0
    assert list((tmp_path / "paths").glob("*.png"))
    from ablations.app import doctor

    args = doctor.options(build_parser().parse_args(["doctor", "--results", str(tmp_path)]))
    assert (args.out, args.md) == (str(tmp_path / "doctor.json"), str(tmp_path / "doctor.md"))


def test_storage_help_names_the_real_journal_path():
    sweep = build_parser()._subparsers._group_actions[0].choices["sweep"]
    text = " ".join(sweep.format_help().split())
    real = experiment_dir(Path("<results>"), "<protocol>", "<experiment>")
    assert f"{real}/" in text and "journal" in text  # the file name lives in the study layer


def _swept(results: Path, protocol: str) -> None:
    d = results / protocol / "table2"
    d.mkdir(parents=True)
    (d / "experiment.json").write_text(json.dumps({"experiment": "table2"}))


def test_without_protocol_the_folder_that_holds_the_experiment_is_used(tmp_path, capsys):
    from ablations.app.cli import find_protocol

    ns = argparse.Namespace(protocol=None, experiments=None, results=str(tmp_path),
                            experiment="table2")  # fmt: skip
    _swept(tmp_path, "smoke")
    find_protocol(ns)
    assert ns.protocol == "smoke"
    assert main(["status", "table2", "--results", str(tmp_path)]) == 0
    assert "table2@smoke" in capsys.readouterr().out
    _swept(tmp_path, "cifar100")
    ns.protocol = None
    with pytest.raises(ConfigError, match="cifar100, smoke; pass --protocol"):
        find_protocol(ns)
    _swept(tmp_path, load_catalog().default_protocol)
    ns.protocol = None
    find_protocol(ns)
    assert ns.protocol is None  # the default's folder holds it: as before


def test_help_imports_no_torch():
    code = ("import sys\nfrom ablations.app.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr


def test_list_shows_whole_descriptions(capsys):
    assert main(["list"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for description in load_catalog().descriptions.values():
        assert " ".join(description.split()) in text


def test_tune_lines_name_the_variant():
    from ablations.tune.worker import Reporter

    shown = PlainProgress(stream=io.StringIO())
    Reporter(None, shown, "bi/t0").start("t0", 2, 4)
    assert "bi/t0: 2 epochs x 4 steps" in shown.stream.getvalue()


def test_a_tune_splits_cache_does_not_call_the_sweeps_stale(tmp_path, caplog):
    from ablations.data import DataConfig, build_datasets

    root = make_tree(tmp_path / "f", ["ant", "bee"], n_train=10, n_val=2)
    kw = {"dataset": "imagefolder", "root": str(root), "img_size": 16, "cache": True,
          "cache_dir": str(tmp_path / "cache"), "augment": "none"}  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="ablations.data"):
        build_datasets(DataConfig(**kw))
        build_datasets(DataConfig(**kw, split="tune"))
    assert "may be stale" not in caplog.text
    write_jpeg(root / "train" / "ant" / "new.jpg", 99)  # the files changed: old cache is stale
    with caplog.at_level(logging.WARNING, logger="ablations.data"):
        build_datasets(DataConfig(**kw))
    assert "may be stale" in caplog.text
