"""``vil-ablate show``: one point's merged config, each value with the layer it came from, and
the same values a sweep resolves for that point."""

from __future__ import annotations

import json

from ablations.app.cli import main
from ablations.schema.catalog import load_catalog
from ablations.schema.config import flatten, to_dict
from ablations.schema.layers import Layer, sources
from ablations.sweep import SweepOptions, resolve


def _show(capsys, *args: str) -> dict[str, dict]:
    assert main(["show", *args, "--json"]) == 0
    return {r["key"]: r for r in json.loads(capsys.readouterr().out)}


def test_show_names_each_values_layer(capsys):
    rows = _show(capsys, "table2", "bi", "--protocol", "smoke", "--set", "train.epochs=5",
                 "--device", "cpu")  # fmt: skip
    src = {k: r["source"] for k, r in rows.items()}
    assert src["model.release"] == "default" and src["model.size"] == "protocol smoke"
    assert src["model.patch_size"] == "protocol demo" and src["data.class_list"] == "protocol paper"
    assert src["model.pooling"] == "experiment" and src["model.traversal"] == "variant"
    assert src["train.epochs"] == "--set" and rows["train.epochs"]["value"] == 5
    assert src["train.seed"] == "seed" and src["train.device"] == "device"
    s = resolve(SweepOptions(experiment="table2", protocol="smoke", device="cpu",
                             overrides={"train": {"epochs": 5}}), check_data=False)  # fmt: skip
    flat = {k: r["value"] for k, r in rows.items()}
    swept = next(c for p, c in s.configs.items() if p.variant == "bi" and p.seed == 0)
    assert flat == json.loads(json.dumps(flatten(to_dict(swept))))  # the sweep's values


def test_show_matched_depth_and_the_reference_by_default(capsys):
    rows = _show(capsys, "table2_iso_params", "bi_shared", "--protocol", "smoke")
    assert rows["model.depth"]["source"] == "matched" and rows["model.depth"]["value"] >= 1
    ref = _show(capsys, "table2", "--protocol", "smoke")
    assert ref["model.traversal"] == {"key": "model.traversal", "value": "alternating",
                                      "source": "variant"}  # fmt: skip


def test_later_layers_win_and_tuned_is_named():
    cat = load_catalog()
    layers = [
        Layer("variant", "v", {"train": {"lr": 0.1}}),
        Layer("tuned", "t", {"train": {"lr": 0.2}}),
    ]
    src = sources(cat.protocol_keys["smoke"], layers)
    assert src["train.lr"] == "tuned" and src["train.epochs"] == "protocol smoke"


def test_unknown_variant_is_one_line_exit_2(capsys):
    assert main(["show", "table2", "nope", "--protocol", "smoke"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("unknown variant 'nope'; valid: uni, bi, bi_shared, alternating, quad, "
                        "quad_shared, quad_alternating") and "\n" not in err  # fmt: skip
