"""``compare A B`` writes where the user says (issue 34 item 4): by default into A's results
folder (``<results>/compare/``, never the working directory), under a name from both
folders' paths, so two pairs never share a file; never over an earlier comparison without
``--force``; a one-line error (exit 2) before any work where it cannot write."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from ablations.app.cli import main  # noqa: E402
from tests.read_only import read_only  # noqa: E402  (PEP 578: root ignores chmod)
from tests.test_compare import A, B, _folder  # noqa: E402


@pytest.fixture
def folders(tmp_path, monkeypatch) -> dict[str, Path]:
    """untuned, tuned and rerun results folders of one experiment; the cwd elsewhere."""
    out = {name: _folder(tmp_path / name, "demo", "table2", top1)
           for name, top1 in (("untuned", A), ("tuned", B), ("rerun", B))}  # fmt: skip
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return out


def _written(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def test_default_is_in_as_results_and_two_pairs_never_share_a_file(folders, tmp_path, capsys):
    a = folders["untuned"]
    assert main(["compare", str(a), str(folders["tuned"])]) == 0
    assert main(["compare", str(a), str(folders["rerun"])]) == 0  # same protocol/experiment
    files = _written(tmp_path / "untuned" / "compare")
    mds = [f for f in files if f.endswith(".md")]
    assert len(mds) == 2 and len(files) == 6, files  # .md, .csv, .tex of each pair
    assert all(f.startswith("demo_table2-vs-up_") for f in mds)
    assert any("tuned_demo_table2" in f for f in mds) and any("rerun" in f for f in mds)
    assert _written(tmp_path / "cwd") == []  # nothing relative to the working directory
    assert "compare: " + str(tmp_path / "untuned" / "compare") in capsys.readouterr().out


def test_never_overwrites_without_force(folders, tmp_path, capsys):
    args = ["compare", str(folders["untuned"]), str(folders["tuned"])]
    assert main(args) == 0
    md = next((tmp_path / "untuned" / "compare").glob("*.md"))
    md.write_text("an earlier comparison")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{md} exists" in err and "--force" in err, err
    assert md.read_text() == "an earlier comparison"
    assert main([*args, "--force"]) == 0 and "tuned" in md.read_text()


def test_out_chooses_the_place(folders, tmp_path, capsys):
    stem = tmp_path / "mine" / "tuning_gain"
    assert (
        main(["compare", str(folders["untuned"]), str(folders["tuned"]), "--out", str(stem)]) == 0
    )
    assert _written(tmp_path / "mine") == ["tuning_gain.csv", "tuning_gain.md", "tuning_gain.tex"]
    assert not (tmp_path / "untuned" / "compare").exists()


@pytest.mark.parametrize("where", ["default", "out"])
def test_a_read_only_place_is_one_line_exit_2_and_writes_nothing(folders, tmp_path, capsys, where):
    args = ["compare", str(folders["untuned"]), str(folders["tuned"])]
    place = tmp_path / "untuned"
    if where == "out":
        place = tmp_path / "ro"
        place.mkdir()
        args += ["--out", str(place / "cmp")]
    before = _written(tmp_path)
    with read_only(place):
        assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err and "Read-only file system" in err, err
    assert "--out STEM" in err and _written(tmp_path) == before
