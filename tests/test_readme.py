"""README.md is the door and docs/ the rooms: the README stays short, every link in it and in
docs/*.md resolves, every `vil-ablate` command shown in a code block of either is one the CLI
accepts (its flags, its experiment and protocol names, its --set keys), and the test command
the README gives users is the one CI runs."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from ablations.app.cli_args import build_parser
from ablations.schema.catalog import load_catalog

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
CLI = ("vil-ablate", "run_ablation.py")


def _rel(page: Path) -> str:
    return str(page.relative_to(REPO))


def test_readme_stays_under_300_lines():
    lines = README.read_text().count("\n")
    assert lines < 300, f"README.md has {lines} lines; move long sections into docs/"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_relative_link_resolves(page):
    """Links to docs pages and figures, relative to the page; web links are not fetched."""
    targets = [t for t in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:", t)]
    missing = [t for t in targets if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{_rel(page)}: links to missing files: {missing}"


def test_readme_links_every_docs_page():
    linked = {Path(t).name for t in LINK.findall(README.read_text()) if t.startswith("docs/")}
    unlinked = [p.name for p in DOCS if p.name not in linked]
    assert not unlinked, f"README.md links no docs page {unlinked}"


def _commands(page: Path) -> list[list[str]]:
    """The argv after `vil-ablate` / `run_ablation.py` of each command line in a shell or
    plain code block: continuations joined, comments dropped, env prefixes skipped."""
    out = []
    for lang, body in FENCE.findall(page.read_text()):
        if lang not in ("", "bash", "sh"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if not any(name in line for name in CLI):
                continue
            words = shlex.split(line.replace("$STORAGE", "postgresql://h/db"), comments=True)
            at = next((i for i, w in enumerate(words) if w.endswith(CLI)), None)
            head = words[:at] if at is not None else []
            if at is not None and all("=" in w or w.endswith(("srun", "torchrun")) or
                                      w.startswith("-") or w.isdigit() for w in head):  # fmt: skip
                out.append(words[at + 1 :])
    return out


def _config_keys() -> set[str]:
    text = (REPO / "docs" / "config-reference.md").read_text()
    return set(re.findall(r"^\| `([a-z_]+\.[a-z_0-9.]+)` \|", text, flags=re.MULTILINE))


def _exact_parser() -> argparse.ArgumentParser:
    """The CLI's parser without prefix matching: the pages must show full flag names."""
    parser = build_parser()
    for p in [parser, *parser._subparsers._group_actions[0].choices.values()]:
        p.allow_abbrev = False
    return parser


SHOWN = [(page, argv) for page in PAGES for argv in _commands(page)]


def test_the_extraction_finds_the_commands():
    """Guards the check below from passing on nothing: README and docs show the commands."""
    pages = {_rel(p) for p, _ in SHOWN}
    assert "README.md" in pages and len(SHOWN) > 40, pages  # the extraction finds them
    shown = {argv[0] for _, argv in SHOWN}
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert commands - {"list", "show", "status", "report", "eval", "paths"} <= shown


@pytest.mark.parametrize(("page", "argv"), SHOWN, ids=[f"{_rel(p)}:{a[0]}" for p, a in SHOWN])
def test_every_command_shown_is_accepted(page, argv, capsys):
    """Parsed by the CLI's parser with full flag names (a renamed or removed flag fails), with
    known experiment and protocol names (unless the command names its own --experiments
    file) and --set keys."""
    try:
        args = _exact_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{_rel(page)}: vil-ablate {shlex.join(argv)}: {capsys.readouterr().err}")
    if getattr(args, "experiments", None) is None and not args.imports:
        catalog = load_catalog(REPO / "experiments.yaml")
        if getattr(args, "experiment", None) and args.command not in ("compare", "influence"):
            assert args.experiment in catalog.experiments, (_rel(page), argv)
        if getattr(args, "protocol", None):
            assert args.protocol in catalog.protocols, (_rel(page), argv)
    keys = _config_keys()
    unknown = [kv for kv in getattr(args, "set", []) if kv.split("=")[0] not in keys]
    assert not unknown, f"{_rel(page)}: --set keys not in config-reference.md: {unknown}"


def test_the_readme_test_command_is_what_ci_runs():
    """The README tells users `make test`; .ci/run runs exactly that, and the Makefile's
    `test` runs the lint gates and then pytest over the whole suite (no marker filter)."""
    assert "make test   #" in README.read_text()
    ci = [ln for ln in (REPO / ".ci" / "run").read_text().splitlines() if ln.strip()]
    assert ci[-1].strip() == "make test", ci[-1]
    make = (REPO / "Makefile").read_text()
    recipe = make.split("\ntest: lint\n", 1)[1].split("\n\n", 1)[0].strip()
    assert recipe == "$(BIN)/python -m pytest", recipe
    lint = make.split("\nlint: setup\n", 1)[1].split("\n\n", 1)[0]
    assert all(gate in lint for gate in ("ruff check .", "ruff format --check .", "lint-imports"))
