"""Seeds are paired: every variant of one seed sees the same batches (order, augmentation,
Mixup/CutMix), whatever its model, so ``diff_to_reference`` may pair per-seed results.

Checked on the real training loop: the batches each variant's steps receive are recorded
(after augmentation and after mixing) for two variants whose models differ in size, init
and RNG use (drop path draws random numbers in the forward pass).
"""

from __future__ import annotations

import hashlib

import ablations.data
import ablations.train.loop as loop
from ablations.schema.catalog import load_catalog
from ablations.schema.config import apply

REAL_MIXER = ablations.data.make_batch_mixer


def _batches(tmp_path, variant, seed, monkeypatch, workers: int = 0, epochs: int = 2) -> list:
    seen: list[str] = []

    def recording_mixer(cfg, num_classes):
        mix = REAL_MIXER(cfg, num_classes)

        def wrapped(images, labels, generator=None):
            out, targets = mix(images, labels, generator)
            h = hashlib.sha256(images.numpy().tobytes() + out.numpy().tobytes())
            seen.append(h.update(targets.numpy().tobytes()) or h.hexdigest())
            return out, targets

        return wrapped

    monkeypatch.setattr(loop, "make_batch_mixer", recording_mixer)  # the name the loop calls
    cat = load_catalog()
    cfg = cat.experiment("table2").config_for(cat.protocol("smoke"), variant, seed)
    over = {
        "data": {"train_samples": 32, "val_samples": 8, "img_size": 16, "augment": "paper",
                 "mixup_alpha": 0.8, "cutmix_alpha": 1.0, "num_workers": workers},
        "model": {"drop_path": 0.1 if variant == "quad" else 0.0},
        "train": {"batch_size": 8, "epochs": epochs},
    }  # fmt: skip
    loop.train(apply(cfg, over, "test"), tmp_path / f"{variant}-{seed}-{workers}")
    return seen


def test_every_variant_of_a_seed_sees_the_same_batches(tmp_path, monkeypatch):
    alt = _batches(tmp_path, "alternating", 0, monkeypatch)
    quad = _batches(tmp_path, "quad", 0, monkeypatch)
    assert len(alt) == 8 and alt == quad  # 2 epochs x 4 steps, identical
    other = _batches(tmp_path, "alternating", 1, monkeypatch)
    assert len(set(other) & set(alt)) == 0  # another seed: other batches


def test_pairing_holds_with_loader_workers(tmp_path, monkeypatch):
    # Workers augment with seeds drawn from the loader's generator (reseeded per epoch).
    alt = _batches(tmp_path, "alternating", 0, monkeypatch, workers=1, epochs=1)
    assert len(alt) == 4 and alt == _batches(tmp_path, "quad", 0, monkeypatch, 1, epochs=1)


def test_batches_do_not_depend_on_the_number_of_loader_workers(tmp_path, monkeypatch):
    # data.num_workers is not science (config.NOT_SCIENCE): 0, 1 and 2 workers must give the
    # same augmented and mixed batches, or a report would pair runs that saw other images.
    runs = [_batches(tmp_path, "alternating", 0, monkeypatch, n, epochs=2) for n in (0, 1, 2)]
    assert len(runs[0]) == 8 and runs[0] == runs[1] == runs[2]
