"""The package's layers (pyproject.toml's import-linter contract) and what they promise:
no import cycles between modules, Optuna only in the study layer, no product code importing
benchmarks/, and no in-project import hidden inside a function (which is how cycles were
dodged before) except the CLI's, which keeps ``--help`` from importing torch."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ablations", "vil")
LAZY_OK = {"ablations/app/cli.py", "ablations/app/cli_args.py"}  # --help imports no torch


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def test_layers_contract_holds():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    done = subprocess.run([exe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 kept, 0 broken" in done.stdout  # the layers, and report reads records only


def test_e2e_tier_names_only_test_files_that_exist():
    from tests.conftest import E2E_FILES

    missing = sorted(n for n in E2E_FILES if not (REPO / "tests" / n).is_file())
    assert not missing, f"tests/conftest.py E2E_FILES names files that do not exist: {missing}"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph(*PACKAGES)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(edges) == []
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]  # the check finds one


def _imports(path: Path) -> list[tuple[ast.AST, str, bool]]:
    """(node, module, inside a function) for every import of a source file."""
    tree = ast.parse(path.read_text())
    inner = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
             for n in ast.walk(f)}  # fmt: skip
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out += [(n, a.name, id(n) in inner) for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            out.append((n, "." * n.level + (n.module or ""), id(n) in inner))
    return out


def test_optuna_only_in_the_study_layer_and_no_benchmarks():
    for path in _sources():
        rel = path.relative_to(REPO).as_posix()
        for _, module, _ in _imports(path):
            assert not module.startswith("benchmarks"), f"{rel} imports {module}"
            if module.split(".")[0] == "optuna":
                assert rel.startswith("ablations/study/"), f"{rel} imports {module}"
        if not rel.startswith("ablations/study/"):
            assert "optuna" not in path.read_text(), f"{rel} names optuna"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_in_project_import_inside_a_function(path):
    rel = path.relative_to(REPO).as_posix()
    if rel in LAZY_OK:
        return
    for node, module, inside in _imports(path):
        ours = module.startswith(".") or module.split(".")[0] in (*PACKAGES, "benchmarks")
        assert not (inside and ours), f"{rel}:{node.lineno} imports {module} in a function"
