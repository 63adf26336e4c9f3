"""NX-AI's published ImageNet-1K checkpoints (the one place naming their URLs) and loading.

The published files hold ``{"state_dict": ...}`` in the training code's layout (source
``train``), for 224 px, patch 16, 1000 classes, alternating traversal. Each entry says which
of our sizes and releases it fits; ``create_model(..., pretrained=NAME | URL | PATH)`` loads it
through :func:`vil.convert.load_reference_state_dict` (downloads via torch.hub's cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vil.convert import load_reference_state_dict
from vil.registry import Registry
from vil.sizes import SIZES

BASE_URL = "https://ml.jku.at/research/vision_lstm/download/"


@dataclass(frozen=True)
class Checkpoint:
    """A published checkpoint and the model it fits (traversal alternating, 224 px, 1000)."""

    file: str  # under BASE_URL
    size: str  # our size name (vil.SIZES)
    release: str  # our release name (vil.RELEASES)
    pooling: str  # the pooling it was trained with

    @property
    def url(self) -> str:
        return BASE_URL + self.file


PRETRAINED: Registry[Checkpoint] = Registry("pretrained checkpoint")
for _name, _file, _size in [
    ("vil-tiny", "vil_tiny16_e800_in1k.th", "tiny"),
    ("vil-tiny-e400", "vil_tiny16_e400_in1k.th", "tiny"),
    ("vil-tinyplus", "vil_tinyplus16_e800_in1k.th", "tiny_plus"),
    ("vil-tinyplus-e400", "vil_tinyplus16_e400_in1k.th", "tiny_plus"),
    ("vil-small", "vil_small16_e400_in1k.th", "small"),
    ("vil-smallplus", "vil_smallplus16_e400_in1k.th", "small_plus"),
    ("vil-base", "vil_base16_e400_in1k.th", "base"),
]:
    PRETRAINED.register(_name, Checkpoint(_file, _size, "v1", "bilateral_avg"))
for _name, _file, _size in [  # VisionLSTM2's depth 12 counts block pairs: our 24 blocks
    ("vil2-tiny", "vil2_tiny16_e800_in1k.th", "tiny"),
    ("vil2-tiny-e400", "vil2_tiny16_e400_in1k.th", "tiny"),
    ("vil2-small", "vil2_small16_e400_in1k.th", "small"),
    ("vil2-base", "vil2_base16_e400_in1k.th", "base"),
]:
    PRETRAINED.register(_name, Checkpoint(_file, _size, "v2", "bilateral_concat"))


def read_checkpoint(where: str) -> dict[str, torch.Tensor]:
    """A state dict from a published name, a URL (torch.hub cache) or a local file."""
    if where in PRETRAINED:
        where = PRETRAINED[where].url
    if where.startswith(("http://", "https://")):
        obj = torch.hub.load_state_dict_from_url(where, map_location="cpu", weights_only=True)
    else:
        path = Path(where).expanduser()
        if not path.is_file():
            valid = ", ".join(PRETRAINED.names())
            raise FileNotFoundError(f"no checkpoint file {str(path)!r}; published: {valid}")
        obj = torch.load(path, map_location="cpu", weights_only=True)
    return obj["state_dict"] if "state_dict" in obj else obj


def load_pretrained(model, where: str, source: str = "train") -> None:
    """Load a checkpoint into ``model``; a published name must fit its size and release."""
    if where in PRETRAINED:
        ck = PRETRAINED[where]
        c = model.cfg
        want = {"dim/depth": _dims(ck.size), "release": ck.release, "traversal": "alternating"}
        have = {"dim/depth": (c.dim, c.depth), "release": c.release, "traversal": c.traversal}
        for key, value in want.items():
            if have[key] != value:
                raise ValueError(f"{where} needs {key} {value}, the model has {have[key]}")
    load_reference_state_dict(model, read_checkpoint(where), source)


def _dims(size: str) -> tuple[int, int]:
    return SIZES[size]
