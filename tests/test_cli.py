"""The CLI in-process: list --json, --dry-run, one-line config errors with exit code 2."""

from __future__ import annotations

import json

import pytest
import yaml

from ablations.app.cli import main
from ablations.schema.catalog import PACKAGE_FILE


def test_list_json_has_registries_experiments_and_protocols(capsys):
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"traversals", "poolings", "experiments", "protocols"}
    assert {"uni", "alternating", "quad_alternating", "snake_alternating"} <= set(
        data["traversals"]
    )
    assert {"avg", "middle_cls", "bilateral_concat"} <= set(data["poolings"])
    assert data["experiments"]["table2"]["reference"] == "alternating"
    assert data["experiments"]["table3"]["axis"] == "pooling"
    assert {"paper", "demo", "smoke"} <= set(data["protocols"])


def test_dry_run_lists_trials_with_flops_and_cost(capsys, tmp_path):
    code = main(["sweep", "table2", "--protocol", "paper", "--dry-run", "--json", "--results",
                 str(tmp_path), "--seeds", "0,1", "--variants", "alternating,bi,quad"])  # fmt: skip
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6 and rows[0]["trial"] == "alternating-s0"
    by = {r["trial"]: r for r in rows}
    assert by["bi-s0"]["params"] > by["alternating-s0"]["params"]  # bi: own parameters
    assert by["quad-s1"]["flops"] > by["bi-s1"]["flops"] > by["alternating-s1"]["flops"]
    alt = by["alternating-s0"]
    assert alt["train_flops"] == alt["flops"] * 3 * 1024 * (alt["train_images"] // 1024) * 400
    assert not any(tmp_path.iterdir())  # nothing written
    assert main(["sweep", "table3", "--protocol", "smoke", "--dry-run"]) == 0
    assert "5 trials; estimated training cost" in capsys.readouterr().out


def _bad_file(tmp_path, edit) -> str:
    spec = yaml.safe_load(PACKAGE_FILE.read_text())
    edit(spec)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_config_errors_are_one_line_with_exit_code_2(capsys, tmp_path):
    bad = _bad_file(tmp_path, lambda s: s["protocols"]["smoke"]["model"].update(traversal="zz"))
    assert main(["sweep", "table2", "--experiments", bad, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{bad}: protocols.smoke.model.traversal: unknown traversal 'zz'; valid: uni" in err
    assert main(["sweep", "table2", "--set", "train.epochs=x", "--dry-run"]) == 2
    assert "--set: train.epochs: expected int, got 'x'" in capsys.readouterr().err
    assert main(["sweep", "table9", "--dry-run"]) == 2
    assert "unknown experiment 'table9'; valid: table2, table3, extended" in capsys.readouterr().err
    assert main(["sweep", "table2", "--protocol", "fast", "--dry-run"]) == 2
    assert "unknown protocol 'fast'; valid: paper, demo, smoke" in capsys.readouterr().err
    assert main(["sweep", "table2", "--variants", "uni,zz", "--dry-run"]) == 2
    assert "--variants: unknown ['zz']" in capsys.readouterr().err


def test_paper_protocol_needs_data_root_before_training(capsys, tmp_path):
    assert main(["sweep", "table2", "--protocol", "paper", "--results", str(tmp_path)]) == 2
    assert "data.root is required" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_status_of_an_unstarted_experiment(capsys, tmp_path):
    assert main(["status", "table3", "--protocol", "smoke", "--results", str(tmp_path)]) == 0
    assert "not started" in capsys.readouterr().out


def test_dry_run_measure_estimates_wall_time_from_real_steps(capsys, tmp_path):
    code = main(["sweep", "table2", "--protocol", "smoke", "--dry-run", "--measure", "--json",
                 "--variants", "uni,quad", "--results", str(tmp_path)])  # fmt: skip
    assert code == 0
    rows = {r["trial"]: r for r in json.loads(capsys.readouterr().out)}
    for r in rows.values():
        images = r["train_steps"] * r["batch_size"]
        assert r["est_train_hours"] * 3600 == pytest.approx(images / r["measured_img_per_s"])
        assert r["batch_size"] % r["suggested_micro_batch"] == 0
    # quad runs four directions per block: measured slower than uni on any device
    assert rows["quad-s0"]["measured_img_per_s"] < rows["uni-s0"]["measured_img_per_s"]
    assert not any(tmp_path.iterdir())
