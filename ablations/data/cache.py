"""A one-time uint8 cache of decoded, resized images (numpy memmap + index json).

Why: decoding full-size JPEGs dominates CPU data loading. The cache decodes each image once:
- train images: central square of the image (side = shorter side), resized (PIL bicubic,
  antialiased) to ``stored_size`` = floor(img_size / 0.875) (146 for 128). Keeping a square
  (rather than padding) wastes no space on padding and gives random crops real pixels;
  it drops the long side's borders (~12% each side for 4:3 photos), the same region the
  paper's eval view keeps;
- val images: stored at exactly the eval view (Resize shorter side + CenterCrop img_size),
  so evaluation reads them as they are.
Layout of ``<cache_dir>/<name>-<key16>/``: ``train.u8`` / ``val.u8`` (N, 3, S, S) uint8,
``index.json`` (key, labels, paths, skipped files) and ``COMPLETE``, written last.

Validity: the key hashes the cache version, the class list, the sizes and every file's
path, size and mtime; a different key is a different folder. A folder without
``COMPLETE`` or with a different key is never used. A build runs in ``<folder>.partial``
with a checkpoint (``progress.json``, written after the data are flushed) so an
interrupted build resumes; the finished folder is renamed into place atomically. A file
lock keeps concurrent workers from building the same cache twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .imagefolder import DECODE_ERRORS, BadImageError, Sample, open_rgb

log = logging.getLogger("ablations.data")

CACHE_VERSION = 1  # bump when the stored pixels would change for the same inputs
MARKER = "COMPLETE"
CHECKPOINT_EVERY = 2000  # images between progress checkpoints of a build


def default_cache_dir() -> Path:
    """The user's cache folder: ``$XDG_CACHE_HOME/vil-ablate`` or ``~/.cache/vil-ablate``.

    Never the dataset folder: datasets are often shared or read-only, and a cache there
    would surprise whoever owns them (``data.cache_dir`` puts it anywhere, on purpose).
    """
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vil-ablate"


def cache_key(splits: dict[str, list[Sample]], classes: list[str], sizes: dict) -> str:
    """sha256 over everything that decides the stored bytes."""
    h = hashlib.sha256()
    head = {"version": CACHE_VERSION, "classes": classes, "sizes": sizes, "resample": "bicubic"}
    h.update(json.dumps(head, sort_keys=True).encode())
    for split in sorted(splits):
        h.update(f"\n[{split}]".encode())
        for s in splits[split]:
            h.update(f"\n{s.path}\t{s.label}\t{s.size}\t{s.mtime_ns}".encode())
    return h.hexdigest()


def load_square(path: str, side: int) -> np.ndarray:
    """Decode, take the central square, resize it to ``side``: uint8 (3, side, side)."""
    img = open_rgb(path, draft_size=side)
    w, h = img.size
    m = min(w, h)
    box = ((w - m) // 2, (h - m) // 2, (w - m) // 2 + m, (h - m) // 2 + m)
    img = img.resize((side, side), Image.BICUBIC, box=box)
    return np.asarray(img).transpose(2, 0, 1)


def decode_job(job: tuple[str, int]):
    """Worker entry point: (path, side) -> array or error text (never raises)."""
    try:
        return load_square(*job)
    except DECODE_ERRORS as err:
        return f"cannot decode: {type(err).__name__}: {err}"


def read_index(folder: Path) -> dict | None:
    """The index of a finished cache folder, or None when it is not complete."""
    try:
        if not (folder / MARKER).is_file():
            return None
        return json.loads((folder / "index.json").read_text())
    except (OSError, ValueError):
        return None


def is_ready(folder: Path, key: str) -> bool:
    """Complete, same key, and data files of the recorded sizes."""
    index = read_index(folder)
    if index is None or index.get("key") != key:
        return False
    for meta in index["splits"].values():
        f = folder / meta["file"]
        if not f.is_file() or f.stat().st_size != int(np.prod(meta["shape"])):
            return False
    return True


@contextmanager
def file_lock(path: Path):
    """An exclusive advisory lock (POSIX); a no-op where fcntl is unavailable."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class CachedDataset(Dataset):
    """Reads uint8 images from a cache memmap; augmentation runs on the fly."""

    def __init__(self, file: Path, shape: list[int], labels: list[int], transform=None):
        self.file, self.shape, self.transform = str(file), tuple(shape), transform
        self.targets = list(labels)
        self._mm: np.memmap | None = None  # opened lazily: one per DataLoader worker

    def __len__(self) -> int:
        return len(self.targets)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_mm": None}  # never pickle an open memmap

    def array(self) -> np.memmap:
        """The (N, 3, S, S) uint8 store, opened read-only on first use."""
        if self._mm is None:
            if self.shape[0] == 0:
                return np.zeros(self.shape, np.uint8)  # type: ignore[return-value]
            self._mm = np.memmap(self.file, np.uint8, "r", shape=self.shape)
        return self._mm

    def __getitem__(self, index: int):
        img = torch.from_numpy(np.array(self.array()[index]))  # copy out of the page cache
        if self.transform is not None:
            img = self.transform(img)
        return img, self.targets[index]


def open_cached(
    folder: Path, split: str, transform=None, index: dict | None = None
) -> CachedDataset:
    """A dataset over one split of a finished cache folder (``index``: already read)."""
    index = index or read_index(folder)
    if index is None:
        raise BadImageError(f"{folder}: cache is not complete")
    meta = index["splits"][split]
    return CachedDataset(folder / meta["file"], meta["shape"], meta["labels"], transform)


def remove_stale(folder: Path) -> None:
    """Delete a cache folder that exists but must not be used (incomplete or mismatched)."""
    if folder.exists():
        log.warning("cache %s is incomplete or stale: rebuilding it", folder)
        shutil.rmtree(folder, ignore_errors=True)
