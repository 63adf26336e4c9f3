"""`influence` feeds each model the data it was trained on (issue 32 item 4, issue 35 item 5)."""

from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import torch

from ablations.app import influence_command as ic
from ablations.schema.catalog import load_catalog
from ablations.schema.config import apply, to_dict

Point = namedtuple("Point", "variant seed run_dir")


def _cfg(**data):
    cat = load_catalog()
    cfg = cat.experiment("table2").config_for(cat.protocol("smoke"), "alternating", 0)
    return apply(cfg, {"data": data}, "test") if data else cfg


def test_each_target_gets_inputs_built_from_its_own_data_config(tmp_path, monkeypatch):
    seen = []

    def inputs(cfg, opts):
        seen.append(cfg.data.num_classes)
        return torch.zeros(1, 3, 4, 4), cfg.data.num_classes, f"{cfg.data.num_classes} classes"

    monkeypatch.setattr(ic, "load_inputs", inputs)
    monkeypatch.setattr(ic, "build", lambda t, stage, n: (torch.nn.Identity(), {"seed": n}))
    fed = []
    monkeypatch.setattr(ic, "analyse", lambda m, x, name, stage, o: fed.append(name) or
                        SimpleNamespace(provenance=None, name=name, stage=stage,
                                        memory={"graph_peak_mib": 1.0}))  # fmt: skip
    monkeypatch.setattr(ic, "write_outputs", lambda results, out, meta: [meta["inputs"]])
    targets = [ic.Target("a", _cfg(num_classes=4)), ic.Target("b", _cfg(num_classes=6)),
               ic.Target("c", _cfg(num_classes=4))]  # fmt: skip
    out = ic.run(targets, ic.Options(images=1), tmp_path, "test")
    assert seen == [4, 6]  # one build per distinct data config, each target its own
    assert fed == ["a", "b", "c"] and out == ["4 classes; 6 classes"]


def test_an_experiments_runs_are_analysed_on_their_recorded_data(tmp_path, capsys):
    trained = _cfg(num_classes=6)  # what the run trained on
    run = Path(tmp_path) / "runs" / "alternating-s0"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"config": to_dict(trained)}))
    p, q = Point("alternating", 0, "runs/alternating-s0"), Point("uni", 0, "runs/uni-s0")
    command = _cfg(num_classes=4)  # what this command would build
    sweep = SimpleNamespace(grid=[p, q], configs={p: command, q: command}, exp_dir=tmp_path)
    first, second = ic.experiment_targets(sweep)
    assert first.cfg.data.num_classes == 6  # the recorded data, not the command's
    assert "analysed on the data its run trained on" in capsys.readouterr().out
    assert second.cfg.data.num_classes == 4  # no run yet: the command's config
