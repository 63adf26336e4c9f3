"""Config dataclasses, overrides and experiments.yaml validation (file + key path + choices)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ablations.schema.catalog import PACKAGE_FILE, find_experiments_file, load_catalog
from ablations.schema.config import ConfigError, RunConfig, apply, parse_set, to_dict


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _shipped() -> dict:
    return yaml.safe_load(PACKAGE_FILE.read_text())


def test_defaults_are_the_paper_protocol():
    cfg = load_catalog().protocol("paper")
    m, t, d = cfg.model, cfg.train, cfg.data
    assert (m.size, m.patch_size, m.traversal, m.pooling, m.drop_path) == (
        "tiny", 16, "alternating", "bilateral_avg", 0.0,
    )  # fmt: skip
    assert (t.epochs, t.batch_size, t.lr, t.min_lr, t.warmup_epochs) == (400, 1024, 1e-3, 1e-6, 50)
    assert (t.betas, t.weight_decay, t.grad_clip, t.label_smoothing) == ((0.9, 0.999), 0.05, 1, 0)
    assert (t.precision, t.compile) == ("auto", "auto")
    assert (d.dataset, d.class_list, d.img_size, d.augment) == ("imagenet100", "vil", 128, "paper")
    assert (d.mixup_alpha, d.cutmix_alpha, d.mixup_prob, d.cutmix_prob) == (0.8, 1.0, 0.5, 0.5)


def test_shipped_file_protocols_and_experiments():
    cat = load_catalog()
    assert {"paper", "demo", "smoke"} <= set(cat.protocols)
    demo = cat.protocol("demo")
    assert (demo.model.size, demo.model.patch_size, demo.data.img_size) == ("micro", 4, 32)
    assert cat.protocol("smoke").model.size == "nano"
    t2 = cat.experiment("table2")
    assert t2.variant_names == ["uni", "bi", "bi_shared", "alternating", "quad", "quad_shared",
                                "quad_alternating"]  # fmt: skip
    assert t2.reference == "alternating"
    uni = t2.config_for(cat.protocol("demo"), "uni", 0)
    bi = t2.config_for(cat.protocol("demo"), "bi", 3)
    assert (uni.model.traversal, uni.model.pooling) == ("uni", "last")
    assert (bi.model.traversal, bi.model.pooling, bi.train.seed) == ("bi", "bilateral_avg", 3)
    t3 = cat.experiment("table3")
    assert t3.reference == "bilateral_avg" and len(t3.variants) == 5
    cfg = t3.config_for(cat.protocol("demo"), "middle_cls", 0)
    assert (cfg.model.traversal, cfg.model.pooling) == ("alternating", "middle_cls")
    assert "alternating" in cat.experiment("extended").variant_names


def test_root_file_is_the_package_file():
    root = Path(__file__).resolve().parents[1] / "experiments.yaml"
    assert root.resolve() == PACKAGE_FILE.resolve()
    assert find_experiments_file("x.yaml") == Path("x.yaml")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s["protocols"]["demo"]["train"].update(epoch=3),
         "experiments.yaml: protocols.demo.train.epoch: unknown key; valid: epochs, batch_size"),
        (lambda s: s["protocols"]["demo"]["train"].update(epochs="ten"),
         "experiments.yaml: protocols.demo.train.epochs: expected int, got 'ten'"),
        (lambda s: s["protocols"]["demo"]["model"].update(traversal="zigzag"),
         "protocols.demo.model.traversal: unknown traversal 'zigzag'; valid: uni, bi,"),
        (lambda s: s["experiments"]["table2"]["variants"].append("zigzag"),
         "experiments.table2.variants[7].traversal: unknown traversal 'zigzag'; valid: uni"),
        (lambda s: s["experiments"]["table3"].update(reference="max"),
         "experiments.table3.reference: reference 'max' is not a variant; valid: avg,"),
        (lambda s: s["protocols"]["smoke"].update(base="nope"),
         "protocols.smoke.base: unknown protocol 'nope'; valid: "),
        (lambda s: s["protocols"]["demo"]["data"].update(augment="heavy"),
         "protocols.demo.data.augment: unknown augment 'heavy'; valid: paper, light, none"),
        (lambda s: s["experiments"]["table2"].update(axis="depth"),
         "experiments.table2.axis: unknown axis 'depth'; valid: traversal, pooling"),
    ],
)  # fmt: skip
def test_validation_names_file_key_path_and_choices(tmp_path, edit, expected):
    spec = _shipped()
    edit(spec)
    path = _write(tmp_path, spec)
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert expected.replace("experiments.yaml", str(path)) in msg


def test_set_overrides_are_yaml_parsed_and_validated():
    over = parse_set(["train.epochs=5", "train.betas=[0.8, 0.9]", "model.dim=null"])
    cfg = apply(RunConfig(), over, "--set")
    assert cfg.train.epochs == 5 and cfg.train.betas == (0.8, 0.9) and cfg.model.dim is None
    assert apply(RunConfig(), parse_set(["train.compile=off"]), "--set").train.compile == "off"
    assert apply(RunConfig(), parse_set(["train.lr=1"]), "--set").train.lr == 1.0
    with pytest.raises(ConfigError, match=r"^--set: train\.epochs: expected int, got 2\.5$"):
        apply(RunConfig(), parse_set(["train.epochs=2.5"]), "--set")
    with pytest.raises(ConfigError, match=r"--set: model\.pooling: unknown pooling 'max'"):
        apply(RunConfig(), parse_set(["model.pooling=max"]), "--set")
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        parse_set(["train.epochs"])


def test_to_dict_round_trip():
    cfg = apply(RunConfig(), {"model": {"size": "nano"}, "train": {"epochs": 2}}, "t")
    back = apply(RunConfig(), to_dict(cfg), "t")
    assert back == cfg


def test_a_file_of_experiments_only_uses_the_bundled_protocols(tmp_path):
    """docs/own-parts.md's exp.yaml holds only an experiment: the protocols are the bundled
    ones (same resolved configs, same default); a file with protocols keeps only its own."""
    mine = tmp_path / "exp.yaml"
    mine.write_text("experiments:\n  diag:\n    axis: traversal\n    variants: [alternating, bi]\n")
    cat, bundled = load_catalog(mine), load_catalog(PACKAGE_FILE)
    assert cat.protocols.keys() == bundled.protocols.keys()
    assert cat.default_protocol == bundled.default_protocol
    assert to_dict(cat.protocol("smoke")) == to_dict(bundled.protocol("smoke"))
    assert list(cat.experiments) == ["diag"]
    own = yaml.safe_load(PACKAGE_FILE.read_text())
    own = {"protocols": {"mine": {"model": {"depth": 2}}}, "default_protocol": "mine"}
    mine.write_text(yaml.safe_dump(own))
    assert list(load_catalog(mine).protocols) == ["mine"]
    mine.write_text("protocols: {}\n")
    with pytest.raises(ConfigError, match="default_protocol: unknown 'paper'|defines none"):
        load_catalog(mine)
    mine.write_text("- a list\n")
    with pytest.raises(ConfigError, match="exp.yaml: expected a mapping of imports"):
        load_catalog(mine)
