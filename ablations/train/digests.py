"""What two runs share, as short digests in their records: the initial weights and the data
stream. A paired comparison (one seed, two variants) needs the same data stream; an A/A
control (``model.init_seed``) needs the same data stream and other initial weights, and
``vil-ablate calibrate`` checks both from the records rather than trusting the config.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from ablations.train.loaders import Loaders
from ablations.train.runtime import step_seed

DIGEST_CHARS = 16  # of the sha256 hex digest: plenty to tell runs apart


def weights_digest(model: nn.Module) -> str:
    """sha256 of every parameter and buffer (name, shape, float32 bytes), in order."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        t = tensor.detach().to("cpu", torch.float32).contiguous()
        h.update(str(tuple(t.shape)).encode() + t.numpy().tobytes())
    return h.hexdigest()[:DIGEST_CHARS]


def data_digest(loaders: Loaders, seed: int, steps: int) -> str:
    """sha256 of the first epoch's data draws: each sample's (index, augmentation seed) in
    the sampler's order, and each step's seed (Mixup/CutMix, drop path). The sampler is
    reseeded per epoch (``Loaders.set_epoch``), so reading it here changes nothing."""
    loaders.set_epoch(seed, 0)
    pairs = np.asarray(list(loaders.sampler), dtype=np.uint64)
    steps_ = np.asarray([step_seed(seed, 0, i) for i in range(steps)], dtype=np.uint64)
    return hashlib.sha256(pairs.tobytes() + b"|" + steps_.tobytes()).hexdigest()[:DIGEST_CHARS]
