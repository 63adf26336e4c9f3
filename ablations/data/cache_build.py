"""Building the uint8 cache (see ``cache.py`` for the format and the validity rules)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ablations.schema.files import utc_now, write_json

from .cache import (
    CACHE_VERSION,
    CHECKPOINT_EVERY,
    MARKER,
    decode_job,
    file_lock,
    is_ready,
    read_index,
    remove_stale,
)
from .imagefolder import BadImageError, Sample

log = logging.getLogger("ablations.data")

Jobs = dict[str, tuple[list[Sample], int]]  # split -> (samples, stored side)


def ensure_cache(
    folder: Path, key: str, jobs: Jobs, meta: dict, workers: int, strict: bool, progress: bool
) -> bool:
    """Make ``folder`` a complete cache for ``key``; return True when it was (re)built."""
    if is_ready(folder, key):
        return False
    with file_lock(folder.with_name(folder.name + ".lock")):
        if is_ready(folder, key):  # another process finished it while we waited
            return False
        remove_stale(folder)
        partial = folder.with_name(folder.name + ".partial")
        build(partial, key, jobs, meta, workers, strict, progress)
        os.rename(partial, folder)  # atomic: the folder appears complete or not at all
    log.info("cache ready: %s", folder)
    older = older_caches(folder, meta.get("selection"))
    if older:  # not deleted: a run may still use them
        log.warning("older caches beside %s may be stale (delete if unused): %s", folder, older)
    return True


def older_caches(folder: Path, selection: dict | None) -> list[str]:
    """Caches beside ``folder`` of the same files selection (root, split, subsets): built
    from an older state of those files. Another split's cache (a tune's) is not stale."""
    prefix = folder.name.rsplit("-", 1)[0] + "-"
    out = []
    for p in sorted(folder.parent.glob(prefix + "*")):
        index = read_index(p) if p.is_dir() and p != folder else None
        if index is not None and index.get("selection") == selection:
            out.append(p.name)
    return out


def _resume_state(partial: Path, key: str) -> dict | None:
    try:
        state = json.loads((partial / "progress.json").read_text())
    except (OSError, ValueError):
        return None
    return state if state.get("key") == key else None


def build(
    partial: Path, key: str, jobs: Jobs, meta: dict, workers: int, strict: bool, progress: bool
) -> None:
    """Decode every job into ``partial``, resuming a checkpointed earlier attempt."""
    state = _resume_state(partial, key)
    if state is None:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        state = {"key": key, "splits": {}}
    else:
        log.warning("resuming the interrupted cache build in %s", partial)
    total = sum(len(samples) for samples, _ in jobs.values())
    done = sum(s["next"] for s in state["splits"].values())
    with progress_bar(progress, total, done, f"caching {meta.get('dataset', 'images')}") as adv:
        for split, (samples, side) in jobs.items():
            _build_split(partial, split, samples, side, state, workers, strict, adv)
    splits = {
        split: {k: st[k] for k in ("file", "shape", "labels", "paths")}
        for split, st in state["splits"].items()
    }
    skipped = [
        {**x, "split": split} for split, st in state["splits"].items() for x in st["skipped"]
    ]
    index = {"version": CACHE_VERSION, "key": key, "created": utc_now(), **meta}
    write_json(partial / "index.json", {**index, "splits": splits, "skipped": skipped})
    (partial / MARKER).write_text(utc_now() + "\n")  # last: its presence means complete


def _build_split(partial, split, samples, side, state, workers, strict, advance) -> None:
    st = state["splits"].setdefault(
        split, {"next": 0, "count": 0, "labels": [], "paths": [], "skipped": [], "done": False}
    )
    if st["done"]:
        return
    st["file"], item = f"{split}.u8", 3 * side * side
    file = partial / st["file"]
    if not samples:
        file.write_bytes(b"")
        st.update(done=True, shape=[0, 3, side, side])
        return
    mode = "r+" if st["next"] > 0 and file.is_file() else "w+"
    mm = np.memmap(file, np.uint8, mode, shape=(len(samples), 3, side, side))
    todo = samples[st["next"] :]
    for n, (sample, result) in enumerate(
        zip(todo, decode_all(todo, side, workers), strict=True), 1
    ):
        if isinstance(result, str):
            if strict:
                raise BadImageError(f"{sample.path}: {result} (strict=True)")
            log.warning("skipping %s: %s", sample.path, result)
            st["skipped"].append({"path": sample.path, "reason": result})
        else:
            mm[st["count"]] = result
            st["count"] += 1
            st["labels"].append(sample.label)
            st["paths"].append(sample.path)
        st["next"] += 1
        advance(1)
        if n % CHECKPOINT_EVERY == 0:
            mm.flush()  # data first, then the checkpoint that points past it
            write_json(partial / "progress.json", state)
    mm.flush()
    del mm
    os.truncate(file, st["count"] * item)  # drop the slots of skipped images
    st.update(done=True, shape=[st["count"], 3, side, side])
    write_json(partial / "progress.json", state)


def decode_all(samples: list[Sample], side: int, workers: int) -> Iterator:
    """Decoded arrays (or error strings) in order; ``workers`` > 0 uses processes."""
    jobs = [(s.path, side) for s in samples]
    if workers <= 0:
        yield from map(decode_job, jobs)
        return
    with multiprocessing.get_context(_START).Pool(workers) as pool:
        yield from pool.imap(decode_job, jobs, chunksize=16)


# Not fork: forking a process whose other threads (torch's, a progress bar's) hold a lock
# can leave the child waiting on it forever (seen: a decode worker stuck on a futex). A fork
# server (Python 3.14's default) forks from a clean single-threaded process.
_START = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


@contextmanager
def progress_bar(enabled: bool, total: int, done: int, label: str) -> Iterator[Callable]:
    """A rich progress bar; yields ``advance(n)``. Disabled: a no-op callable."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    cols += (TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*cols) as bar:
        task = bar.add_task(label, total=total, completed=done)
        yield lambda n: bar.advance(task, n)
