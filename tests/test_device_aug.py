"""Device-side paper augmentation (ablations/data/deviceaug.py) against the CPU path
(fastaug.TensorTransform): same parameters from the same numbers, same colour ops."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as F

from ablations.data import deviceaug, fastaug
from ablations.data.transforms import BICUBIC


@pytest.mark.parametrize("shape", [(146, 146), (40, 200), (200, 40), (30, 34)])
def test_crop_boxes_equal_the_cpu_paths_for_the_same_numbers(shape):
    u = torch.rand(3000, 40, generator=torch.Generator().manual_seed(sum(shape)))
    boxes = deviceaug.rrc_boxes(*shape, u)
    expected = torch.tensor([fastaug.rrc_params(*shape, row) for row in u.tolist()])
    assert torch.equal(boxes, expected)


def test_box_distribution_is_the_papers():
    """Area fraction spans 0.08-1 and aspect 3/4-4/3 (the numbers the CPU path draws)."""
    u = torch.rand(20000, 40, generator=torch.Generator().manual_seed(0))
    i, j, h, w = deviceaug.rrc_boxes(146, 146, u).double().unbind(1)
    frac, aspect = h * w / 146**2, w / h
    assert frac.min() > 0.07 and frac.max() <= 1.0 and 0.45 < frac.mean() < 0.6
    assert aspect.min() > 0.7 and aspect.max() < 1.45
    assert (i >= 0).all() and (i + h <= 146).all() and (j + w <= 146).all()


def _images(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 8, size // 8, generator=g)  # smooth, photo-like
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear").clamp(0, 1)


def test_colour_ops_equal_the_cpu_paths_per_image():
    x = _images(64, 32)
    u = torch.rand(64, 9, generator=torch.Generator().manual_seed(1))
    kernel = 13
    batch = deviceaug.paper_colour(x.clone(), u, kernel)
    cpu = fastaug.TensorTransform("paper", 32, "square")
    for k in range(64):
        ref = cpu._paper_colour(x[k].clone(), u[k].tolist())
        torch.testing.assert_close(batch[k], ref, rtol=1e-5, atol=1e-5, msg=f"image {k}")
    choices = torch.clamp((u[:, 1] * 3).long(), max=2)
    assert set(choices.tolist()) == {0, 1, 2}  # every 3-Augment branch was compared


def test_resized_crop_matches_torchvision_to_a_tolerance():
    """grid_sample bicubic without antialiasing vs torchvision's antialiased bicubic: within
    one uint8 level on average (the kernels differ; at the crop's border grid_sample also
    reads the pixels just outside it, which a crop-then-resize never sees)."""
    x = _images(16, 146)
    u = torch.rand(16, 40, generator=torch.Generator().manual_seed(2))
    boxes = deviceaug.rrc_boxes(146, 146, u)
    out = deviceaug.resized_crops(x, boxes, 128)
    for k, (i, j, h, w) in enumerate(boxes.tolist()):
        ref = F.resized_crop(x[k], i, j, h, w, [128, 128], interpolation=BICUBIC, antialias=True)
        diff = (out[k] - ref.clamp(0, 1)).abs()
        assert diff.mean() < 1 / 255 and diff.max() < 0.1, (k, diff.mean(), diff.max())


def test_device_augment_is_seeded_and_normalised():
    images = (_images(8, 146) * 255).to(torch.uint8)
    aug = deviceaug.DeviceAugment(128)
    torch.manual_seed(5)
    a = aug(images)
    torch.manual_seed(5)
    b = aug(images)
    assert a.shape == (8, 3, 128, 128) and a.dtype == torch.float32 and torch.equal(a, b)
    assert torch.isfinite(a).all() and -3 < a.mean() < 3


def _cache_cfg(root, tmp_path, **train):
    from ablations.schema.catalog import load_catalog
    from ablations.schema.config import apply

    cat = load_catalog()
    cfg = cat.experiment("table2").config_for(cat.protocol("smoke"), "alternating", 0)
    data = {"dataset": "imagefolder", "root": str(root), "cache_dir": str(tmp_path / "cache"),
            "img_size": 16, "augment": "paper", "augment_on": "device"}  # fmt: skip
    return apply(cfg, {"data": data, "train": {"batch_size": 8, "epochs": 2, **train}}, "t")


def test_training_on_device_augmented_cache_batches_resumes_exactly(tmp_path):
    from ablations.train import Interrupted, train

    try:
        from data_fixtures import make_tree
    except ImportError:
        from tests.data_fixtures import make_tree
    root = make_tree(tmp_path / "tree", ["a", "b", "c", "d"], n_train=6, n_val=2)
    full = train(_cache_cfg(root, tmp_path), tmp_path / "full").to_dict()
    calls = {"n": 0}

    def stop_at_step_4() -> bool:
        calls["n"] += 1
        return calls["n"] > 4

    with pytest.raises(Interrupted):
        train(_cache_cfg(root, tmp_path), tmp_path / "cut", should_stop=stop_at_step_4)
    resumed = train(_cache_cfg(root, tmp_path), tmp_path / "cut").to_dict()
    assert full["state"] == resumed["state"] == "COMPLETE"
    assert resumed["val_loss"] == pytest.approx(full["val_loss"], abs=1e-6)


def test_device_augmentation_needs_the_cache_and_the_paper_recipe():
    from ablations.schema.catalog import load_catalog
    from ablations.schema.config import ConfigError, apply, validate

    cat = load_catalog()
    cfg = apply(cat.protocol("smoke"), {"data": {"augment_on": "device"}}, "t")
    with pytest.raises(ConfigError, match="data.augment_on='device' needs the uint8 cache"):
        validate(cfg)
    with pytest.raises(ConfigError, match="unknown data.augment_on='gpu'; valid: workers, device"):
        validate(apply(cat.protocol("smoke"), {"data": {"augment_on": "gpu"}}, "t"))
