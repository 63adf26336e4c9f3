"""``model.init_seed`` changes the initial weights and nothing else a seed draws (data order,
augmentation, Mixup/CutMix, step seeds); ``data.label_noise`` replaces a known share of the
training labels, drawn from data_seed. Both are science keys hashed only when set.

Checked on the real training loop: the batches each run's steps receive are recorded (after
augmentation and mixing, as tests/test_seed_pairing.py does) and its initial weights kept.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

import ablations.data
import ablations.train.loop as loop
from ablations.data import build_datasets
from ablations.data.label_noise import noisy_targets
from ablations.schema.catalog import load_catalog
from ablations.schema.config import ConfigError, RunConfig, apply, science, validate
from ablations.schema.record import fingerprint

REAL_MIXER, REAL_BUILD = ablations.data.make_batch_mixer, loop.build_model


def _run(tmp_path, monkeypatch, name: str, seed: int, init_seed=None, label_noise=0.0):
    seen: list[str] = []
    weights: dict[str, torch.Tensor] = {}

    def recording_mixer(cfg, num_classes):
        mix = REAL_MIXER(cfg, num_classes)

        def wrapped(images, labels, generator=None):
            out, targets = mix(images, labels, generator)
            h = hashlib.sha256(images.numpy().tobytes() + out.numpy().tobytes())
            seen.append(h.hexdigest())
            return out, targets

        return wrapped

    def keeping_build(cfg, num_classes):
        model = REAL_BUILD(cfg, num_classes)
        weights.update({k: v.clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(loop, "make_batch_mixer", recording_mixer)
    monkeypatch.setattr(loop, "build_model", keeping_build)
    cat = load_catalog()
    cfg = cat.experiment("table2").config_for(cat.protocol("smoke"), "alternating", seed)
    over = {
        "data": {"train_samples": 32, "val_samples": 8, "img_size": 16, "augment": "light",
                 "mixup_alpha": 0.8, "cutmix_alpha": 1.0, "label_noise": label_noise},
        "model": {"init_seed": init_seed},
        "train": {"batch_size": 8, "epochs": 1},
    }  # fmt: skip
    rec = loop.train(apply(cfg, over, "test"), tmp_path / name)
    return seen, weights, rec


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_init_seed_changes_the_weights_not_the_data(tmp_path, monkeypatch):
    base, w0, r0 = _run(tmp_path, monkeypatch, "ref", 0)
    aa, w1, r1 = _run(tmp_path, monkeypatch, "aa", 0, init_seed=1000)
    again, w2, r2 = _run(tmp_path, monkeypatch, "aa-again", 0, init_seed=1000)
    assert len(base) == 4 and aa == base  # same batches, augmented and mixed alike
    assert not _same(w0, w1)  # other initial weights
    assert _same(w1, w2) and again == aa  # init_seed alone decides them: reproducible
    assert r0.data_digest == r1.data_digest and r0.init_digest != r1.init_digest
    assert r1.init_digest == r2.init_digest and r0.top1 != r1.top1
    other, w3, r3 = _run(tmp_path, monkeypatch, "s1", 1, init_seed=1000)
    assert _same(w3, w1) and not set(other) & set(base)  # the run seed moves the data only
    assert r3.data_digest != r0.data_digest


def test_label_noise_keeps_the_data_draws(tmp_path, monkeypatch):
    base, w0, r0 = _run(tmp_path, monkeypatch, "ref", 0)
    noisy, w1, r1 = _run(tmp_path, monkeypatch, "noisy", 0, label_noise=0.5)
    assert noisy == base and _same(w0, w1)  # the images, their order and the init: as before
    assert r0.data_digest == r1.data_digest
    assert r1.data["label_noise"] == {"share": 0.5, "replaced": 16, "of": 32, "seed": 0}


def test_noisy_targets_exact_share_other_class_seeded():
    targets = np.arange(1000) % 10
    a = noisy_targets(targets, 10, 0.2, seed=3)
    assert int(np.sum(a != targets)) == 200  # exactly the share, each to another class
    assert np.array_equal(a, noisy_targets(targets, 10, 0.2, seed=3))
    assert not np.array_equal(a, noisy_targets(targets, 10, 0.2, seed=4))
    assert np.array_equal(noisy_targets(targets, 10, 0.0, seed=3), targets)


def test_built_dataset_carries_the_noise():
    cfg = apply(RunConfig(), {"data": {"num_classes": 4, "train_samples": 40, "val_samples": 8,
                                       "img_size": 16, "label_noise": 0.25}}, "t")  # fmt: skip
    bundle = build_datasets(cfg.data)
    labels = [bundle.train[i][1] for i in range(len(bundle.train))]
    clean = [bundle.train.base[i][1] for i in range(len(bundle.train))]
    assert sum(x != y for x, y in zip(labels, clean, strict=True)) == 10
    assert [bundle.val[i][1] for i in range(8)] == [bundle.val.targets[i] for i in range(8)]


def test_fingerprint_only_when_set():
    base = RunConfig()
    assert "model.init_seed" not in science(base) and "data.label_noise" not in science(base)
    aa = apply(base, {"model": {"init_seed": 7}}, "t")
    noisy = apply(base, {"data": {"label_noise": 0.1}}, "t")
    assert science(aa)["model.init_seed"] == 7 and science(noisy)["data.label_noise"] == 0.1
    prints = {fingerprint(science(c)) for c in (base, aa, noisy)}
    assert len(prints) == 3


@pytest.mark.parametrize(
    ("over", "msg"),
    [
        ({"data": {"label_noise": 1.0}}, "data.label_noise=1.0 must be a number in [0, 1)"),
        ({"data": {"label_noise": -0.1}}, "data.label_noise=-0.1 must be a number in [0, 1)"),
        ({"model": {"init_seed": -1}}, "model.init_seed: -1 is negative"),
    ],
)
def test_bad_values_one_line(over, msg):
    cfg = apply(RunConfig(), {"model": {"patch_size": 4}, "data": {"img_size": 16}}, "t")
    with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace(")", r"\)")):
        validate(apply(cfg, over, "t"), "t", data=True)


def test_init_seed_type_checked():
    with pytest.raises(ConfigError, match="model.init_seed: expected"):
        apply(RunConfig(), {"model": {"init_seed": "x"}}, "--set")
