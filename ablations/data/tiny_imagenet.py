"""Tiny-ImageNet-200 in its distributed layout (as unzipped from tiny-imagenet-200.zip).

``root/train/<wnid>/images/*.JPEG`` (500 a class; the ``<wnid>_boxes.txt`` beside them is
ignored) and ``root/val/images/*.JPEG`` labelled by ``root/val/val_annotations.txt`` (tab
separated: file, wnid, box): used as they are, no reshuffling. A val/ already sorted into
``val/<wnid>/`` folders is accepted too. ``wnids.txt``, when present, must name the train
folders. ``test/`` has no labels and is not used. Images are 64x64 JPEGs.
"""

from __future__ import annotations

from pathlib import Path

from ablations.schema.data_config import DataConfigError

from .imagefolder import (
    FileScan,
    class_folders,
    require_dirs,
    scan_class_folders,
    scan_flat_folder,
    subdirs,
)

ANNOTATIONS = "val_annotations.txt"


def read_annotations(path: Path, classes: list[str]) -> dict[str, str]:
    """File stem -> wnid from ``val_annotations.txt``; one-line errors for bad lines."""
    if not path.is_file():
        raise DataConfigError(
            f"{path}: missing (expected Tiny-ImageNet's val labels: file<TAB>wnid)"
        )
    known, labels = set(classes), {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0] or parts[1] not in known:
            what = "a train class" if len(parts) >= 2 else "file<TAB>wnid"
            raise DataConfigError(f"{path}:{n}: {line.strip()[:60]!r} (expected {what})")
        labels[parts[0].rsplit(".", 1)[0]] = parts[1]
    if not labels:
        raise DataConfigError(f"{path}: no labels (expected lines file<TAB>wnid<TAB>box)")
    return labels


def _classes(root: Path, train: Path) -> list[str]:
    classes = subdirs(train)
    if len(classes) < 2:
        raise DataConfigError(f"{train}: {class_folders(len(classes))} (expected 200 <wnid>/)")
    listed = root / "wnids.txt"
    if listed.is_file():
        wnids = sorted(w for w in listed.read_text().split() if w)
        if wnids != classes:
            extra = sorted(set(wnids) ^ set(classes))
            raise DataConfigError(
                f"{listed}: names {len(wnids)} classes, {train} has {len(classes)} folders "
                f"(first difference: {extra[0] if extra else '?'})"
            )
    return classes


def scan(cfg) -> FileScan:
    """The registry's entry point for ``tiny_imagenet``."""
    root = Path(cfg.root).expanduser()
    train, val = root / "train", root / "val"
    layout = f"{root}/train/<wnid>/images/ and {root}/val/images/ + val/{ANNOTATIONS}"
    require_dirs(layout, root, train, val)
    classes = _classes(root, train)
    train_files, _ = scan_class_folders(train, classes, cfg.strict, required=True, sub="images")
    if (val / "images").is_dir():
        labels = read_annotations(val / ANNOTATIONS, classes)
        val_files = scan_flat_folder(val / "images", labels, classes, cfg.strict, ANNOTATIONS)
        source = str(val / ANNOTATIONS)
    elif set(subdirs(val)) and set(subdirs(val)) <= set(classes):
        val_files, _ = scan_class_folders(val, classes, cfg.strict, required=False)
        source = "class folders"
    else:
        raise DataConfigError(f"{val / 'images'}: no such folder (expected {layout})")
    return FileScan(classes, train_files, val_files, str(root), None, source)
