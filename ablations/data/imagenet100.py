"""ImageNet-100 from an ImageNet-1K copy (or an already extracted 100-class copy).

Layouts accepted under ``root``:
- ``train/<wnid>/*`` and ``val/<wnid>/*`` (the usual extracted layout);
- ``train/<wnid>/*`` and a flat ``val/*.JPEG`` with labels from Kaggle's
  ``LOC_val_solution.csv`` or the devkit's ``ILSVRC2012_validation_ground_truth.txt`` (+
  ``meta.mat``, read with scipy when installed), found in root, val/ or their parents;
- Kaggle's tree: ``root/ILSVRC/Data/CLS-LOC/{train,val}`` is used when present.

Class lists (by name, always recorded): ``vil`` = the first 100 ImageNet-1K synsets in sorted
order (what the ViL reference code trains on), ``cmc`` = the community standard list (Tian
et al. 2019), or a path to a file with one wnid per line (extra columns and '#' comments are
ignored). Class index = position in the sorted wnids of the list.
"""

from __future__ import annotations

import csv
import re
from importlib import resources
from pathlib import Path

from ablations.schema.data_config import CLASS_LISTS, DataConfigError

from .imagefolder import FileScan, class_folders, scan_class_folders, scan_flat_folder, subdirs

WNID = re.compile(r"^n\d{8}$")
KAGGLE_CSV = "LOC_val_solution.csv"
DEVKIT_GT = "ILSVRC2012_validation_ground_truth.txt"


def parse_class_list(text: str, source: str) -> list[str]:
    """wnids from list text: first token of each line; blank lines and '#' comments skipped."""
    wnids = [ln.split()[0] for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    bad = [w for w in wnids if not WNID.match(w)]
    if bad:
        raise DataConfigError(f"{source}: {bad[0]!r} is not a wnid (expected lines like n01440764)")
    dup = sorted({w for w in wnids if wnids.count(w) > 1})
    if dup:
        raise DataConfigError(f"{source}: duplicate wnid {dup[0]} (each class once)")
    if len(wnids) < 2:
        raise DataConfigError(f"{source}: {len(wnids)} wnids; expected at least 2 (usually 100)")
    return sorted(wnids)


def load_class_list(name: str) -> tuple[str, list[str]]:
    """(recorded name, sorted wnids) for "vil", "cmc" or a list file path."""
    if name in CLASS_LISTS:
        text = resources.files(__package__).joinpath(f"classlists/{name}.txt").read_text()
        return name, parse_class_list(text, f"class list {name!r}")
    path = Path(name).expanduser()
    if not path.is_file():
        raise DataConfigError(
            f"data.class_list={name!r}: not one of {CLASS_LISTS} and no such file"
        )
    return str(path.resolve()), parse_class_list(path.read_text(), str(path))


def resolve_root(root: str) -> Path:
    """The folder holding train/ and val/ (following Kaggle's ILSVRC/Data/CLS-LOC)."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataConfigError(f"data.root={root!r}: no such folder (expected train/ and val/)")
    kaggle = base / "ILSVRC" / "Data" / "CLS-LOC"
    if (kaggle / "train").is_dir():
        return kaggle
    if not (base / "train").is_dir():
        raise DataConfigError(
            f"{base}: no train/ folder (expected {base}/train/<class>/ and {base}/val/)"
        )
    return base


def _missing_classes_message(train: Path, name: str, wnids: list[str]) -> str:
    present = set(subdirs(train))
    missing = [w for w in wnids if w not in present]
    msg = (
        f"{train / missing[0]}: class folder missing ({len(missing)} of the {len(wnids)} "
        f"classes of list {name!r} absent, e.g. {', '.join(missing[:3])}; {train} has "
        f"{class_folders(len(present))})"
    )
    for other in CLASS_LISTS:
        if other != name and set(load_class_list(other)[1]) <= present:
            msg += f"; the folder holds the {other!r} list: set data.class_list={other!r}"
    return msg + "; or use data.dataset='imagefolder' to take the folder's classes as they are"


def _find_label_file(root: Path, val: Path) -> Path | None:
    """A Kaggle CSV or devkit ground truth in root, val/ or up to 3 parents above root."""
    places = [val, root, *list(root.parents)[:3]]
    for place in places:
        for name in (KAGGLE_CSV, DEVKIT_GT, f"ILSVRC2012_devkit_t12/data/{DEVKIT_GT}"):
            if (place / name).is_file():
                return place / name
    return None


def read_val_labels(path: Path) -> dict[str, str]:
    """File stem (ILSVRC2012_val_00000001) -> wnid, from the Kaggle CSV or the devkit."""
    if path.name == KAGGLE_CSV:
        with open(path, newline="") as f:
            rows = csv.DictReader(f)
            try:
                return {r["ImageId"]: r["PredictionString"].split()[0] for r in rows}
            except (KeyError, IndexError) as err:
                raise DataConfigError(
                    f"{path}: expected columns ImageId,PredictionString ({err!r})"
                ) from err
    meta = path.parent / "meta.mat"
    try:
        from scipy.io import loadmat  # optional: only the devkit format needs it
    except ImportError as err:
        raise DataConfigError(f"{path}: reading the devkit's meta.mat needs scipy") from err
    if not meta.is_file():
        raise DataConfigError(f"{meta}: missing (the devkit's synset order for {path.name})")
    synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
    id_to_wnid = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets}
    ids = [int(x) for x in path.read_text().split()]
    return {f"ILSVRC2012_val_{k + 1:08d}": id_to_wnid[i] for k, i in enumerate(ids)}


def _scan_flat_val(root: Path, val: Path, classes: list[str], strict: bool):
    label_file = _find_label_file(root, val)
    if label_file is None:
        raise DataConfigError(
            f"{val}: flat validation folder without labels (expected val/<wnid>/ folders, or "
            f"{KAGGLE_CSV} / {DEVKIT_GT} in {root} or its parents)"
        )
    labels = read_val_labels(label_file)
    return scan_flat_folder(val, labels, classes, strict, label_file.name), str(label_file)


def scan_imagenet100(root: str, class_list: str, strict: bool) -> FileScan:
    """Classes and files of ImageNet-100 under ``root`` (no decoding)."""
    list_name, classes = load_class_list(class_list)
    base = resolve_root(root)
    train = base / "train"
    if any(not (train / w).is_dir() for w in classes):
        raise DataConfigError(_missing_classes_message(train, list_name, classes))
    train_files, _ = scan_class_folders(train, classes, strict, required=True)
    val = base / "val"
    if not val.is_dir():
        raise DataConfigError(
            f"{val}: missing (expected val/<wnid>/ folders, or a flat val/ with {KAGGLE_CSV})"
        )
    if subdirs(val):
        val_files, _ = scan_class_folders(val, classes, strict, required=False)
        val_source = "class folders"
    else:
        val_files, val_source = _scan_flat_val(base, val, classes, strict)
    return FileScan(classes, train_files, val_files, str(base), list_name, val_source)


def scan(cfg) -> FileScan:
    """The registry's entry point for ``imagenet100``."""
    return scan_imagenet100(cfg.root, cfg.class_list, cfg.strict)
