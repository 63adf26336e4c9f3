"""Before any work: a results folder that cannot be made is one line, exit 2, before the data
are scanned; the dry run says its image count is of files listed, decoded only at run time;
class-folder counts read in the singular for one."""

from __future__ import annotations

import pytest

from ablations.app.cli import main
from ablations.sweep import checks

try:
    from data_fixtures import make_tree
except ImportError:  # tests/ imported as a package
    from tests.data_fixtures import make_tree


def _args(root, results, *extra):
    return ["sweep", "table2", "--protocol", "smoke", "--variants", "uni", "--device", "cpu",
            "--set", "data.dataset=imagefolder", "--set", f"data.root={root}",
            "--set", "train.batch_size=4", "--results", str(results), *extra]  # fmt: skip


@pytest.mark.parametrize("dry", [False, True])
@pytest.mark.parametrize("where", ["below a file", "is a file"])
def test_a_results_folder_that_cannot_be_made_fails_before_the_data_scan(
    tmp_path, monkeypatch, capsys, dry, where
):
    root = make_tree(tmp_path / "data", ["cat", "dog"], n_train=4, n_val=1)
    blocker = tmp_path / "taken"
    blocker.write_text("a file where a folder should be")
    results = blocker / "results" if where == "below a file" else blocker

    def no_scan(cfg):
        raise AssertionError("the data were scanned before the results folder was checked")

    monkeypatch.setattr(checks, "describe", no_scan)
    assert main(_args(root, results, *(["--dry-run"] if dry else []))) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert f"--results {results}" in err and "cannot create this folder" in err
    assert f"{blocker} is a file, not a folder" in err
    assert blocker.read_text() == "a file where a folder should be"


def test_dry_run_counts_the_files_it_lists_and_says_they_are_decoded_later(tmp_path, capsys):
    root = make_tree(tmp_path / "data", ["cat", "dog"], n_train=4, n_val=1)
    (root / "train" / "cat" / "broken.jpg").write_bytes(b"not an image")  # listed, undecodable
    assert main(_args(root, tmp_path / "res", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "images per epoch: 9 files listed in data.root, decoded at run time" in out
    assert "classes: 2, counted in data.root (the model's head)" in out  # the folder's
    assert not (tmp_path / "res").exists()  # the dry run writes nothing


def test_one_class_folder_is_singular(tmp_path, capsys):
    root = make_tree(tmp_path / "data", ["cat"], n_train=4, n_val=1)
    assert main(_args(root, tmp_path / "res", "--dry-run")) == 2
    err = capsys.readouterr().err
    assert "1 class folder (expected at least 2)" in err
