"""docs/config-reference.md is generated from the dataclass field comments and kept current:
the check fails when a field, default, comment or registered name changes without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ablations.schema import reference
from ablations.schema.config import DataConfig, TrainConfig
from vil import ViLConfig

REPO = Path(__file__).resolve().parents[1]


def test_config_reference_is_current():
    # a fresh process: registries exactly as the package leaves them (no test's additions)
    done = subprocess.run([sys.executable, "-m", "ablations.schema.reference", "--check"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_every_field_has_its_comment_in_the_reference():
    text = (REPO / "docs" / "config-reference.md").read_text()
    for section, cls in (("model", ViLConfig), ("data", DataConfig), ("train", TrainConfig)):
        notes = reference.field_comments(cls)
        for name, note in notes.items():
            assert note, f"{section}.{name} has no comment to document it"
            assert f"| `{section}.{name}` |" in text and note.replace("|", "\\|") in text
    pooling = reference.field_comments(ViLConfig)["pooling"]  # continued on the next line
    assert pooling.endswith("None = the release's (v1 bilateral_avg, v2 bilateral_concat)")


def test_check_fails_on_a_stale_page(tmp_path, capsys):
    stale = tmp_path / "ref.md"
    stale.write_text(reference.render().replace("AdamW betas", "Adam betas"))
    assert reference.main(["--check", "--out", str(stale)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert reference.main(["--out", str(stale)]) == 0
    assert reference.main(["--check", "--out", str(stale)]) == 0
