"""data.download without a network: one line naming the URL and the offline way, exit 2."""

from __future__ import annotations

import urllib.error
import urllib.request

from ablations.app.cli import main


def test_download_without_internet_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    root = tmp_path / "cifar"
    args = ["sweep", "table2", "--protocol", "cifar100", "--dry-run", "--variants", "uni",
            "--set", f"data.root={root}", "--set", "data.download=true"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for words in ("cifar-100-python.tar.gz", "cannot download https://", "URLError",
                  "name resolution", f"extract it into {root}"):  # fmt: skip
        assert words in err, err
