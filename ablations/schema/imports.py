"""A user's own parts: modules and files imported before a command runs.

``--import MODULE_OR_FILE`` (any command, repeatable) and the ``imports:`` list of
experiments.yaml name a module on ``sys.path`` (``my_parts``) or a ``.py`` file
(``parts/my_parts.py``; in experiments.yaml relative to that file). Importing one runs its
``register_*`` calls, so its traversals, poolings, datasets, sizes ... are valid everywhere.

The imports of this process are kept in import order: ``child_argv`` / ``child_env`` hand
them to every child process (sweep and tune workers, ``submit`` tasks), ``record`` states
them in the run record, and ``science_keys`` puts the hash of each file whose registered
names a config uses into that config's fingerprint (a changed traversal file is another
experiment; runs of the bundled parts keep their fingerprints).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import vil
from ablations.schema.datasets import KINDS
from ablations.schema.errors import ConfigError
from vil import mlstm

ENV = "VIL_ABLATE_IMPORTS"  # os.pathsep-joined specs, for children that do not get argv
FLAG = "--import"
PREFIX = "imports."  # science keys: imports.<module> -> the sha256 of its file
REGISTRIES = {
    "traversal": vil.TRAVERSALS, "order": vil.ORDERS, "pooling": vil.POOLINGS,
    "release": vil.RELEASES, "init": vil.INITS, "size": vil.SIZES, "pretrained": vil.PRETRAINED,
    "cell": mlstm.FORMS, "dataset": KINDS,
}  # fmt: skip  # what an import may register (trackers do not change what a run measures)


@dataclass(frozen=True)
class Imported:
    """One imported module or file and the names it registered."""

    spec: str  # as given: a module name, or the file's absolute path
    module: str  # the name in sys.modules
    file: str | None  # its source file (None: a package without one)
    sha256: str | None  # of that file's bytes
    registered: dict[str, list[str]] = field(default_factory=dict)  # registry -> names


_ACTIVE: dict[str, Imported] = {}  # spec -> import, in import order (this process's imports)


def import_all(specs: Iterable[str], source: str = FLAG, base: Path | None = None) -> None:
    """Import each module or file once (a second time is a no-op); ConfigError (one line,
    naming ``source``) for one that is missing or fails."""
    for i, raw in enumerate(specs):
        where = source if source == FLAG else f"{source}[{i}]"
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(f"{where}: expected a module name or a .py file, got {raw!r}")
        _import_one(raw.strip(), where, base)


def _is_file(spec: str, base: Path | None) -> Path | None:
    path = Path(spec).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    looks = spec.endswith(".py") or os.sep in spec or path.is_file()
    return path.resolve() if looks else None


def _import_one(spec: str, where: str, base: Path | None) -> Imported:
    path = _is_file(spec, base)
    key = str(path) if path else spec
    if key in _ACTIVE:
        return _ACTIVE[key]
    before = _names()
    try:
        module = _load_file(path, where) if path else _load_module(spec, where)
    except ConfigError:
        raise
    except Exception as e:  # the user's code failed: a config problem, named in one line
        raise ConfigError(f"{where}: importing {spec!r} failed: {type(e).__name__}: {e}") from None
    file = getattr(module, "__file__", None)
    digest = hashlib.sha256(Path(file).read_bytes()).hexdigest() if file else None
    after = _names()
    added = {k: [n for n in after[k] if n not in before[k]] for k in after}
    done = Imported(key, module.__name__, file, digest, {k: v for k, v in added.items() if v})
    _ACTIVE[key] = done
    return done


def _load_module(spec: str, where: str) -> Any:
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as e:
        if e.name and spec.split(".")[0] == e.name.split(".")[0]:
            raise ConfigError(
                f"{where}: no module or file {spec!r}; valid: a module on sys.path "
                "(PYTHONPATH) or a path to a .py file"
            ) from None
        raise


def _load_file(path: Path, where: str) -> Any:
    if not path.is_file():
        raise ConfigError(f"{where}: no such file {str(path)!r}; valid: a path to a .py file")
    name = path.stem
    taken = sys.modules.get(name)
    if taken is not None and getattr(taken, "__file__", None) != str(path):
        name = f"{name}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pickling by reference (forked data workers) finds it
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _names() -> dict[str, list[str]]:
    return {k: reg.names() for k, reg in REGISTRIES.items()}


def active() -> list[Imported]:
    """This process's imports, in import order."""
    return list(_ACTIVE.values())


def child_argv() -> list[str]:
    """``--import X`` for each active import (files as absolute paths): append it to a child
    command line of ``vil-ablate`` (workers, submit tasks) so the child has the same parts."""
    return [a for imp in active() for a in (FLAG, imp.spec)]


def child_env() -> dict[str, str]:
    """The same for a child that is not started through the command line: the environment
    variable ``VIL_ABLATE_IMPORTS`` that ``from_env`` (run by ``vil-ablate``) imports."""
    return {ENV: os.pathsep.join(imp.spec for imp in active())} if _ACTIVE else {}


def from_env(environ: Mapping[str, str] | None = None) -> None:
    """Import what a parent put in ``VIL_ABLATE_IMPORTS`` (see ``child_env``)."""
    value = (os.environ if environ is None else environ).get(ENV, "")
    import_all([s for s in value.split(os.pathsep) if s], f"${ENV}")


def record() -> list[dict[str, Any]]:
    """What the run record states: every active import, its file, hash and names."""
    return [asdict(imp) for imp in active()]


def science_keys(flat: Mapping[str, Any]) -> dict[str, str]:
    """``imports.<module>: sha256`` of each imported file that registered a name the flat
    config ``flat`` uses (its fingerprint then changes with the file)."""
    used = {v for v in flat.values() if isinstance(v, str)}
    return {
        f"{PREFIX}{imp.module}": imp.sha256 or ""
        for imp in active()
        if any(n in used for names in imp.registered.values() for n in names)
    }
