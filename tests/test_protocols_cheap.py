"""The cheaper real-data protocols and protocol-level seeds in experiments.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import vil
from ablations.schema.catalog import PACKAGE_FILE, load_catalog
from ablations.schema.config import ConfigError, validate

CHEAP = {"cifar100": ("cifar100", 32, 4), "tiny_imagenet": ("tiny_imagenet", 64, 8),
         "in100_64": ("imagenet100", 64, 8)}  # fmt: skip


@pytest.mark.parametrize("name", CHEAP)
def test_cheap_protocols_keep_the_papers_token_grid(name):
    cat = load_catalog()
    cfg = cat.protocol(name)
    dataset, img, patch = CHEAP[name]
    assert (cfg.data.dataset, cfg.data.img_size, cfg.model.patch_size) == (dataset, img, patch)
    paper = cat.protocol("paper")
    grid = paper.data.img_size // paper.model.patch_size
    assert img // patch == grid == 8 and cfg.model.size == "tiny"
    assert cfg.train.warmup_epochs / cfg.train.epochs == pytest.approx(
        paper.train.warmup_epochs / paper.train.epochs
    )  # the paper's warm-up share
    assert cat.seeds_for(cat.experiment("table2"), name) == (0, 1, 2)
    assert len(cat.descriptions[name]) > 100 and "Deviations" in cat.descriptions[name]
    validate(cfg, name, data=False)


def test_per_image_compute_is_the_papers():
    # The description's figures: same 64 tokens, so about the paper's FLOPs per image.
    flops = {}
    for img, patch in {(128, 16)} | {(img, patch) for _, img, patch in CHEAP.values()}:
        model = vil.create_model(size="tiny", img_size=img, patch_size=patch, num_classes=100)
        flops[img, patch] = vil.count_flops(model, img)
    for _, img, patch in CHEAP.values():
        assert 0.97 < flops[img, patch] / flops[128, 16] < 1.0


def _write(tmp_path: Path, edit) -> Path:
    spec = yaml.safe_load(PACKAGE_FILE.read_text())
    edit(spec)
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_seed_precedence(tmp_path):
    def edit(spec):
        spec["protocols"]["child"] = {"base": "cifar100"}  # inherits seeds [0, 1, 2]
        spec["experiments"]["table3"]["seeds"] = [7]

    cat = load_catalog(_write(tmp_path, edit))
    t2, t3 = cat.experiment("table2"), cat.experiment("table3")
    assert cat.seeds_for(t2, "child") == (0, 1, 2)
    assert cat.seeds_for(t3, "child") == (7,)  # the experiment's own seeds win
    assert cat.seeds_for(t2, "child", cli=[4, 5]) == (4, 5)  # --seeds wins over both
    assert cat.seeds_for(t2, "demo") == (0,) == t2.seeds  # nothing named: seed 0
    assert cat.seeds_for(t2, None) == (0,)  # the default protocol (demo)


@pytest.mark.parametrize(
    "seeds, words",
    [(3, "protocols.cifar100.seeds: expected a list of integers, got 3"),
     ([0, 0], "protocols.cifar100.seeds: duplicate seeds")],
)  # fmt: skip
def test_bad_protocol_seeds_give_one_line(tmp_path, seeds, words):
    path = _write(tmp_path, lambda s: s["protocols"]["cifar100"].update(seeds=seeds))
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    assert words in str(err.value) and "\n" not in str(err.value)
