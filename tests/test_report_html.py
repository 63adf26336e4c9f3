"""report.html and index.html: same content as report.md, and checked in a real headless
Chromium (Debian's /usr/bin/chromium driven by Playwright) opened from file://."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ablations.report.blocks import Heading, TableBlock
from ablations.report.html import write_page
from ablations.report.load import load_experiment
from ablations.report.render import Cell, Table, to_markdown
from ablations.report.tables import diff_frame, diff_table

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
FLAGS += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("REPORT_SCREENSHOT_DIR", REPO / "results" / "screenshots"))


def _sweep(root: Path, variant: str, *extra: str) -> None:
    args = [sys.executable, "-m", "ablations.app.cli", "sweep", "table2", "--variants", variant,
            "--protocol", "smoke", "--plain", "--seeds", "0,1", "--results", str(root),
            "--set", "data.train_samples=64", "--set", "data.val_samples=32", *extra]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """A real smoke sweep, uni trained with another weight decay: the runs differ."""
    root = tmp_path_factory.mktemp("html")
    _sweep(root, "alternating")
    _sweep(root, "uni", "--set", "train.weight_decay=0.9")
    return root


def test_html_beside_md_with_the_same_cells(smoke):
    exp_dir = smoke / "smoke" / "table2"
    html = (exp_dir / "report.html").read_text()
    assert (smoke / "index.html").is_file() and (exp_dir / "figures" / "forest.pdf").is_file()
    assert "http://" not in html and "https://" not in html  # nothing fetched from the network
    assert 'src="figures/' not in html  # figures embedded, not linked
    assert html.index('id="warnings"') < html.index('id="setting"')  # warnings first
    exp = load_experiment(exp_dir)
    table = diff_table(exp, diff_frame(exp))
    assert to_markdown(table) in (exp_dir / "report.md").read_text()
    for row in table.rows:  # one formatter: every cell of the Markdown table, verbatim
        for cell in row:
            assert cell.text.replace("&", "&amp;").replace("<", "&lt;") in html
    assert 'class="not-comparable"' in html
    assert 'href="smoke/table2/report.html"' in (smoke / "index.html").read_text()


_CHECKS = """() => {
  const bad = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const ids = new Set([...document.querySelectorAll('[id]')].map(e => e.id));
  const links = [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));
  const dead = links.filter(h => h.startsWith('#') && !ids.has(h.slice(1)));
  const files = links.filter(h => !h.startsWith('#'));
  return {images: document.images.length, bad, dead, files,
          warnings: !!document.querySelector('#warnings li')};
}"""


def _column(page, table: str, col: int) -> list[str]:
    return page.eval_on_selector_all(
        f"{table} tbody tr", f"rows => rows.map(r => r.cells[{col}].textContent.trim())"
    )


def _browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}: apt-get install -y chromium chromium-driver (.ci/run does)")
    sync = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed (test extra)"
    )
    return sync.sync_playwright()


def _open(pw_browser, path: Path, errors: list[str]):
    page = pw_browser.new_page(viewport={"width": 1366, "height": 900})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page


def _links_resolve(path: Path, files: list[str]) -> None:
    for href in files:
        assert "://" not in href, href  # no network
        target = (path.parent / href.split("#")[0]).resolve()
        assert target.exists(), f"{path.name}: {href} does not resolve"


def test_report_in_headless_chromium(smoke):
    exp_dir = smoke / "smoke" / "table2"
    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        errors: list[str] = []
        page = _open(browser, exp_dir / "report.html", errors)
        got = page.evaluate(_CHECKS)
        assert got["images"] >= 5 and got["bad"] == 0, got
        assert not got["dead"], got["dead"]
        _links_resolve(exp_dir / "report.html", got["files"])
        assert got["warnings"]  # the runs differ
        before = _column(page, "#main", 0)
        page.click("#main th:nth-child(1)")
        asc = _column(page, "#main", 0)
        page.click("#main th:nth-child(1)")
        desc = _column(page, "#main", 0)
        assert asc == sorted(before) and desc == asc[::-1], (before, asc, desc)
        # on a laptop screen every table fits: no column (the Note) hidden behind a scrollbar
        wide = page.evaluate(
            "[...document.querySelectorAll('figure.table')]"
            ".filter(f => f.scrollWidth > f.clientWidth + 1).map(f => f.id)"
        )
        assert not wide, f"tables wider than a 1366 px screen: {wide}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "report.png"), full_page=True)
        index = _open(browser, smoke / "index.html", errors)
        got = index.evaluate(_CHECKS)
        assert not got["dead"]
        _links_resolve(smoke / "index.html", got["files"])
        assert "smoke/table2/report.html" in got["files"]
        index.screenshot(path=str(SHOTS / "index.png"))
        browser.close()
    assert not errors, errors


def test_sort_numbers_as_numbers_missing_last(tmp_path):
    """The sorter on a page with numbers that sort wrong as text, and a missing value."""

    rows = [[Cell(a), Cell(b)] for a, b in (("x", "10.5 ± 1.0"), ("y", "—"), ("z", "9.0"),
                                             ("w", "−2.00"), ("v", "2.0 min"))]  # fmt: skip
    table = Table(["name", "value"], rows, "lr", "t")
    page_path = write_page([Heading("t", 1), TableBlock(table, "t1")], tmp_path / "r.html", [])
    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = _open(browser, page_path, [])
        page.click("#t1 th:nth-child(2)")
        asc = _column(page, "#t1", 1)
        page.click("#t1 th:nth-child(2)")
        desc = _column(page, "#t1", 1)
        browser.close()
    assert asc == ["−2.00", "9.0", "10.5 ± 1.0", "2.0 min", "—"]
    assert desc == ["2.0 min", "10.5 ± 1.0", "9.0", "−2.00", "—"]


def test_unranked_columns_do_not_sort(tmp_path):
    """A column whose values are not comparable between rows (``Table.unranked``: throughput
    under different load) keeps the rows in place when its header is clicked."""
    rows = [[Cell(a), Cell(b)] for a, b in (("y", "87 ‡"), ("x", "22 ‡"), ("z", "50 ‡"))]
    table = Table(["name", "img/s"], rows, "lr", "t", unranked=[1])
    page_path = write_page([Heading("t", 1), TableBlock(table, "t1")], tmp_path / "r.html", [])
    with _browser() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = _open(browser, page_path, [])
        page.click("#t1 th:nth-child(2)")
        unsorted = _column(page, "#t1", 1)
        page.click("#t1 th:nth-child(1)")  # the name column still sorts
        names = _column(page, "#t1", 0)
        browser.close()
    assert unsorted == ["87 ‡", "22 ‡", "50 ‡"] and names == ["x", "y", "z"]


if shutil.which("chromium") is None and not Path(CHROMIUM).exists():  # said once, at collection
    print(f"test_report_html: browser checks skip: no {CHROMIUM}", file=sys.stderr)
