"""A built-in, download-free image classification task ("synthetic") for demos and tests.

What it is
    Each image shows two small coloured glyphs (a colour + a shape from a vocabulary of
    K = ceil(sqrt(num_classes)) glyphs) on a noisy grey background with a brightness
    gradient and a few grey clutter rectangles. One glyph lies somewhere in the left half,
    the other somewhere in the right half (random position, size jitter +-1 px).
    The class is the ordered pair (left glyph, right glyph): ``label = K * left + right``.
    So the evidence for a label sits in two different, randomly placed regions, and the
    model must combine both *and* know which one is left: a single patch, a single half
    or an order-free bag of glyph detections is not enough. How tokens are traversed and
    pooled therefore matters (e.g. a uni-directional scan's first token sees nothing).

What it is not
    Not natural images, not a substitute for ImageNet numbers, and not invariant to
    horizontal flips (a flip swaps the two glyphs and so changes the label): use
    ``augment="light"`` (small shifts) rather than "paper" with it. Colour alone identifies
    a glyph for K <= 10; shapes are a second, redundant cue. It does not by itself
    reproduce the paper's "uni-directional is worst": a causal scan's last token sees the
    whole image, and with bilateral pooling a small uni ViL learned it about as fast as an
    alternating one in our check (dim 64, depth 4, 25k samples).

Determinism
    A split is a pure function of (seed, split, num_classes, img_size): image ``i`` uses row
    ``i`` of a seeded stream of uniforms plus a window of a seeded noise field, so it does
    not depend on the split size, the worker count or the order of access. Labels are
    ``i % num_classes``: exactly balanced when the size is a multiple of it. All images are
    generated at construction, vectorised in chunks (20k images of 32 px in about a second).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from .arrays import ArrayDataset, Arrays

log = logging.getLogger("ablations.data")

# Distinct hues (RGB in 0..1); glyph j uses colour j % 10 and a shape that also varies.
PALETTE = np.array(
    [
        [0.95, 0.10, 0.10],  # red
        [0.10, 0.75, 0.10],  # green
        [0.15, 0.25, 1.00],  # blue
        [1.00, 0.90, 0.10],  # yellow
        [0.10, 0.90, 0.90],  # cyan
        [0.90, 0.10, 0.90],  # magenta
        [1.00, 0.55, 0.00],  # orange
        [0.45, 0.10, 0.60],  # purple
        [1.00, 1.00, 1.00],  # white
        [0.00, 0.00, 0.00],  # black
    ],
    dtype=np.float32,
)
SHAPES = ("square", "disk", "triangle", "ring", "cross", "diamond", "xshape", "bars")
SPLIT_IDS = {"train": 0, "val": 1}
MAX_CLASSES = (len(PALETTE) * len(SHAPES)) ** 2
NOISE_BANK_SCALE = 8  # each split shares one noise field of 8x the image side
NOISE_STD = 0.04  # pixel noise (0..1 scale)
GLYPH_FRACTION = 0.42  # glyph side / image side (12-14 px at 32: about 3x3 patches of 4 px)


def _shape_mask(shape: str, size: int) -> np.ndarray:
    """A boolean ``size x size`` mask of a shape drawn on the grid [-1, 1]^2."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    v, u = np.meshgrid(c, c, indexing="ij")
    r = np.sqrt(u**2 + v**2)
    masks = {
        "square": np.maximum(abs(u), abs(v)) <= 0.8,
        "disk": r <= 0.9,
        "triangle": (v >= -0.85) & (v <= 0.85) & (abs(u) <= (v + 0.85) / 1.7 * 0.95),
        "ring": (r <= 0.95) & (r >= 0.5),
        "cross": (abs(u) <= 0.3) | (abs(v) <= 0.3),
        "diamond": abs(u) + abs(v) <= 0.95,
        "xshape": (abs(u - v) <= 0.4) | (abs(u + v) <= 0.4),
        "bars": (abs(v) >= 0.35) & (abs(v) <= 0.85) & (abs(u) <= 0.85),
    }
    return masks[shape]


def glyph_vocabulary(num_classes: int) -> list[tuple[int, str]]:
    """The K glyphs (palette index, shape name) for ``num_classes`` classes."""
    if not 2 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"synthetic num_classes={num_classes} must be in 2..{MAX_CLASSES}")
    k = math.ceil(math.sqrt(num_classes))
    n_col = len(PALETTE)
    # (j % 10, (j + j // 10) % 8) is injective for j < 80: every glyph differs.
    return [(j % n_col, SHAPES[(j + j // n_col) % len(SHAPES)]) for j in range(k)]


def class_names(num_classes: int) -> list[str]:
    """Readable names such as ``"red-square|blue-disk"`` (left glyph | right glyph)."""
    colours = ["red", "green", "blue", "yellow", "cyan", "magenta"]
    colours += ["orange", "purple", "white", "black"]
    vocab = glyph_vocabulary(num_classes)
    k = len(vocab)
    names = [f"{colours[c]}-{s}" for c, s in vocab]
    return [f"{names[i // k]}|{names[i % k]}" for i in range(num_classes)]


def _stamp(img: np.ndarray, u: list[float], glyph, x_lo: int, x_hi: int, masks) -> None:
    """Draw ``glyph`` at a random place with x in [x_lo, x_hi); ``u`` holds 5 uniforms."""
    sizes = list(masks)
    size = sizes[min(int(u[0] * len(sizes)), len(sizes) - 1)]
    colour = PALETTE[glyph[0]] * np.float32(0.85 + 0.15 * u[1]) + np.float32(0.1 * u[2])
    y = int(u[3] * (img.shape[1] - size + 1))
    x = x_lo + int(u[4] * (max(x_lo, x_hi - size) - x_lo + 1))
    np.copyto(
        img[:, y : y + size, x : x + size], colour[:, None, None], where=masks[size][glyph[1]]
    )


def _draw_objects(img: np.ndarray, u: list[float], pair: tuple, masks: dict) -> None:
    """Clutter (grey rectangles, no label information), then the left and right glyphs."""
    h = w = img.shape[1]
    small = max(2, h // 8)
    for j in range(1 + int(u[3] * 3)):
        c = u[4 + 4 * j : 8 + 4 * j]
        ch, cw = 1 + int(c[0] * small), 1 + int(c[1] * small)
        y, x = int(c[2] * (h - ch + 1)), int(c[3] * (w - cw + 1))
        img[:, y : y + ch, x : x + cw] = 0.1 + 0.8 * c[(j + 1) % 4]
    _stamp(img, u[16:21], pair[0], 0, w // 2, masks)
    _stamp(img, u[21:26], pair[1], w - w // 2, w, masks)


N_UNIFORMS = 28  # random scalars per image
CHUNK = 2048  # images composed at once (vectorised background, bounded float memory)


def _render_chunk(u: np.ndarray, labels: np.ndarray, bank: np.ndarray, vocab) -> np.ndarray:
    """Images for rows ``u`` (n, N_UNIFORMS): background, noise window, objects -> uint8."""
    n, size = len(u), bank.shape[1] // NOISE_BANK_SCALE
    masks, ramp_x, ramp_y = _geometry(size)
    k = len(vocab)
    # Background: grey level + linear brightness gradient in a random direction.
    angle = (2 * np.pi * u[:, 0])[:, None, None, None].astype(np.float32)
    level = (0.3 + 0.4 * u[:, 1])[:, None, None, None].astype(np.float32)
    slope = (0.15 * u[:, 2])[:, None, None, None].astype(np.float32)
    img = level + slope * (np.cos(angle) * ramp_x + np.sin(angle) * ramp_y)
    img = np.repeat(img, 3, axis=1)
    span = bank.shape[1] - size
    offsets = (u[:, 26:28] * span).astype(np.int64)  # a random window of the shared noise
    for i in range(n):
        oy, ox = offsets[i]
        img[i] += bank[:, oy : oy + size, ox : ox + size]
        lab = int(labels[i])
        _draw_objects(img[i], u[i].tolist(), (vocab[lab // k], vocab[lab % k]), masks)
    np.clip(img, 0, 1, out=img)
    return (img * 255 + 0.5).astype(np.uint8)


def generate(seed: int, split: str, size: int, num_classes: int, img_size: int) -> tuple:
    """A whole split: (uint8 images (N, 3, H, W), int64 labels (N,))."""
    vocab = glyph_vocabulary(num_classes)
    sid = SPLIT_IDS[split]
    # Row i of this stream is the same whatever ``size`` is: image i never depends on N.
    uniforms = np.random.default_rng((seed, sid, 0)).random((size, N_UNIFORMS))
    side = img_size * NOISE_BANK_SCALE
    bank = np.random.default_rng((seed, sid, 1)).standard_normal((3, side, side), np.float32)
    bank *= NOISE_STD
    labels = labels_of(size, num_classes)
    images = np.empty((size, 3, img_size, img_size), dtype=np.uint8)
    for lo in range(0, size, CHUNK):
        hi = min(lo + CHUNK, size)
        images[lo:hi] = _render_chunk(uniforms[lo:hi], labels[lo:hi], bank, vocab)
    return images, labels


_GEOMETRY: dict[int, tuple] = {}


def _geometry(img_size: int) -> tuple:
    """Shape masks for glyph sizes of GLYPH_FRACTION of the side (+-1 px) and the ramps."""
    if img_size not in _GEOMETRY:
        base = max(3, round(img_size * GLYPH_FRACTION))
        masks = {
            s: {name: _shape_mask(name, s) for name in SHAPES}
            for s in (base - 1, base, base + 1)
            if s <= img_size // 2
        }
        grad = np.linspace(-1, 1, img_size, dtype=np.float32)
        _GEOMETRY[img_size] = (masks, grad[None, :], grad[:, None])
    return _GEOMETRY[img_size]


class SyntheticDataset(ArrayDataset):
    """Pre-generated synthetic split; yields (transformed float tensor, int label)."""

    def __init__(self, split, size, num_classes, img_size, seed=0, transform=None) -> None:
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLIT_IDS)}")
        self.split, self.num_classes = split, num_classes
        arr, labels = generate(seed, split, size, num_classes, img_size)
        # uint8 (N, 3, H, W) images: fast paths may use them
        super().__init__(torch.from_numpy(arr), torch.from_numpy(labels), transform)


def load(cfg) -> Arrays:
    """The registry's entry point: both splits of the configured task as arrays."""
    if cfg.augment == "paper":
        log.warning("synthetic data with augment='paper': flips change labels; use 'light'")
    args = (cfg.num_classes, cfg.img_size)
    train = generate(cfg.data_seed, "train", cfg.train_samples, *args)
    val = generate(cfg.data_seed, "val", cfg.val_samples, *args)
    return Arrays(class_names(cfg.num_classes), *train, *val)


def labels_of(size: int, num_classes: int) -> np.ndarray:
    """The labels of a split of ``size`` images, without generating it (``describe``)."""
    return np.arange(size, dtype=np.int64) % num_classes
