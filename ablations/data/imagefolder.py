"""Scanning ``train/<class>/**`` folders and decoding images robustly (no cache).

Scanning is cheap and catches what needs no decoding: missing folders, empty class folders,
zero-byte files and non-image file names. Decoding errors (truncated, corrupt, random bytes)
are found when the image is decoded: at cache build time, or in ``__getitem__`` without a
cache, where the bad image is replaced by the next good one and recorded (never a crash
mid-epoch), unless ``strict`` asks for an error. Grayscale, CMYK and PNG-behind-.JPEG files
are not errors: PIL opens by content and ``.convert("RGB")`` handles the mode.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

from ablations.schema.data_config import DataConfigError

log = logging.getLogger("ablations.data")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff", ".gif")
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass
class Sample:
    """One image file: path, class index, and the stat data the cache key uses."""

    path: str
    label: int
    size: int
    mtime_ns: int


@dataclass
class SplitFiles:
    """The files of one split plus everything skipped while scanning it."""

    samples: list[Sample] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


@dataclass
class FileScan:
    """What a ``files`` dataset kind's ``scan(cfg)`` finds: classes and both splits' files."""

    classes: list[str]  # class index -> name (folder name / wnid)
    train: SplitFiles  # training files (labels index ``classes``)
    val: SplitFiles  # validation files
    root: str  # the resolved dataset folder
    class_list: str | None = None  # imagenet100's list name or file
    val_labels: str = "class folders"  # where the val labels came from


class BadImageError(DataConfigError):
    """A single image could not be used (raised only with strict=True)."""


def skip(files: SplitFiles, path: str, reason: str, strict: bool) -> None:
    """Record (and log) a skipped file, or raise when strict."""
    if strict:
        raise BadImageError(f"{path}: {reason} (strict=True; set strict=False to skip it)")
    log.warning("skipping %s: %s", path, reason)
    files.skipped.append({"path": path, "reason": reason})


def list_class_dir(folder: Path, label: int, files: SplitFiles, strict: bool) -> int:
    """Add the images of one class folder and of its sub-folders, at any depth (as
    torchvision's ImageFolder does); return how many were added."""
    return _list_tree(folder, label, files, strict, set())


def _list_tree(folder: Path, label: int, files: SplitFiles, strict: bool, seen: set) -> int:
    seen.add(os.path.realpath(folder))  # a symlinked folder is followed once: no cycles
    added = 0
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue  # hidden files and folders (.DS_Store, .ipynb_checkpoints) are not samples
        if entry.is_dir():
            if os.path.realpath(entry.path) not in seen:
                added += _list_tree(Path(entry.path), label, files, strict, seen)
            continue
        if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
            skip(files, entry.path, "not an image file (extension)", strict)
            continue
        st = entry.stat()
        if st.st_size == 0:
            skip(files, entry.path, "empty file (0 bytes)", strict)
            continue
        files.samples.append(Sample(entry.path, label, st.st_size, st.st_mtime_ns))
        added += 1
    return added


def scan_class_folders(
    split_dir: Path, classes: list[str], strict: bool, required: bool, sub: str = ""
) -> tuple[SplitFiles, dict[str, int]]:
    """Scan ``split_dir/<class>/<sub>`` for each class (index = position in ``classes``).

    ``required``: every class must have a non-empty folder (training data); otherwise
    missing or empty folders are only reported in the returned counts (validation data).
    """
    files = SplitFiles()
    counts: dict[str, int] = {}
    for label, name in enumerate(classes):
        folder = split_dir / name / sub if sub else split_dir / name
        if not folder.is_dir():
            if required:
                raise DataConfigError(f"{folder}: class folder missing (expected images of {name})")
            counts[name] = 0
            continue
        counts[name] = list_class_dir(folder, label, files, strict)
        if counts[name] == 0 and required:
            raise DataConfigError(f"{folder}: no images (expected image files of class {name})")
    return files, counts


def scan_flat_folder(
    folder: Path, labels: dict[str, str], classes: list[str], strict: bool, source: str
) -> SplitFiles:
    """Images of a flat folder labelled by ``labels`` (file stem -> class; ``source``: where
    those labels come from, for messages). Files of classes not in ``classes`` are left out.
    """
    index = {c: i for i, c in enumerate(classes)}
    files = SplitFiles()
    with os.scandir(folder) as it:
        entries = sorted((e for e in it if e.is_file() and not e.name.startswith(".")), key=_name)
    for e in entries:
        name = labels.get(e.name.rsplit(".", 1)[0])
        if name not in index:
            if name is None and e.name.lower().endswith(IMAGE_EXTENSIONS):
                skip(files, e.path, f"no label in {source}", strict)
            continue  # another class: not selected
        st = e.stat()
        if st.st_size == 0:
            skip(files, e.path, "empty file (0 bytes)", strict)
            continue
        files.samples.append(Sample(e.path, index[name], st.st_size, st.st_mtime_ns))
    return files


def _name(entry: os.DirEntry) -> str:
    return entry.name


def class_folders(n: int) -> str:
    """'1 class folder', '3 class folders' (for messages)."""
    return f"{n} class folder{'' if n == 1 else 's'}"


def require_dirs(layout: str, *folders: Path) -> None:
    """Raise one line naming the first missing folder and the expected ``layout``."""
    for d in folders:
        if not d.is_dir():
            raise DataConfigError(f"{d}: no such folder (expected {layout})")


def scan(cfg) -> FileScan:
    """The registry's entry point for ``imagefolder``: ``root/{train,val}/<class>/*``."""
    root = Path(cfg.root).expanduser()
    train, val = root / "train", root / "val"
    require_dirs(f"{root}/train/<class>/ and val/<class>/", root, train, val)
    classes = subdirs(train)
    if len(classes) < 2:
        raise DataConfigError(f"{train}: {class_folders(len(classes))} (expected at least 2)")
    unknown = sorted(set(subdirs(val)) - set(classes))
    if unknown:
        raise DataConfigError(
            f"{val / unknown[0]}: class not in {train} (val classes must be train classes)"
        )
    train_files, _ = scan_class_folders(train, classes, cfg.strict, required=True)
    val_files, _ = scan_class_folders(val, classes, cfg.strict, required=False)
    return FileScan(classes, train_files, val_files, str(root))


def subdirs(path: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``path``."""
    with os.scandir(path) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def open_rgb(path: str, draft_size: int | None = None) -> Image.Image:
    """Decode an image file to RGB; raises one of DECODE_ERRORS when it is unusable.

    ``draft_size``: let JPEG decode at a reduced scale (DCT scaling) when the result is
    only needed at about that shorter side: much faster for large photos.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": harmless, not ours to log
        with Image.open(path) as img:
            if draft_size and img.format == "JPEG":
                w, h = img.size
                scale = draft_size / min(w, h)
                img.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
            return img.convert("RGB")  # loads: truncated/corrupt data raises here


class ImageFolderDataset(Dataset):
    """Decodes files on the fly; bad images are replaced by the next good one and counted."""

    MAX_REPLACEMENTS = 64  # that many bad files in a row means the data is broken: raise

    def __init__(self, samples: list[Sample], transform=None, strict: bool = False) -> None:
        self.samples, self.transform, self.strict = samples, transform, strict
        self.targets = [s.label for s in samples]
        self.skipped: list[dict] = []  # per process: DataLoader workers keep their own list
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        for attempt in range(self.MAX_REPLACEMENTS):
            i = (index + attempt) % len(self.samples)
            if i in self._bad:
                continue
            sample = self.samples[i]
            try:
                img = open_rgb(sample.path)
            except DECODE_ERRORS as err:
                if self.strict:
                    raise BadImageError(f"{sample.path}: cannot decode image ({err})") from err
                self._bad.add(i)
                self.skipped.append({"path": sample.path, "reason": f"cannot decode: {err}"})
                log.warning(
                    "skipping %s: cannot decode (%s); using the next image", sample.path, err
                )
                continue
            return (self.transform(img) if self.transform else img), sample.label
        raise BadImageError(
            f"{self.samples[index].path}: {self.MAX_REPLACEMENTS} undecodable images in a row"
        )
