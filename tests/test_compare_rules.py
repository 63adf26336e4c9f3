"""``compare A B`` applies the report's rules between two folders (issue 27 item 1, issue 34
item 1): a variant trained differently in A and B (beyond its own model.* keys, tuned keys
and declared confounds) is "not comparable", the recipe version included, and every
interval's spread is floored at the evaluation noise of the validation images."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` importable
from ablations.app.cli import main  # noqa: E402
from ablations.report.noise import mcnemar_var  # noqa: E402
from ablations.schema import record as runs  # noqa: E402
from ablations.schema.config import RECIPE_KEY  # noqa: E402
from tests.test_report_comparable import SEEDS, TOP1, write_folder  # noqa: E402

B_TOP1 = {v: [x + 1.0 + 0.3 * s for s, x in enumerate(xs)] for v, xs in TOP1.items()}
ALIKE = {"uni": {}, "alternating": {}}


def _compare(a: Path, b: Path, tmp_path: Path) -> pd.DataFrame:
    stem = tmp_path / "cmp"
    assert main(["compare", str(a), str(b), "--out", str(stem), "--force"]) == 0
    return pd.read_csv(stem.with_suffix(".csv")).set_index("variant")


def _edit(exp_dir: Path, variant: str, change) -> None:
    for seed in SEEDS:
        rec = runs.read(exp_dir / f"runs/{variant}-s{seed}")
        change(rec)
        rec.write(exp_dir / f"runs/{variant}-s{seed}")


def test_a_variant_trained_differently_in_b_is_not_comparable(tmp_path, capsys):
    a = write_folder(tmp_path / "a", ALIKE)
    b = write_folder(tmp_path / "b", {"uni": {"train": {"epochs": 4}}, "alternating": {}},
                     top1=B_TOP1)  # fmt: skip
    frame = _compare(a, b, tmp_path)
    uni, alt = frame.loc["uni"], frame.loc["alternating"]
    assert uni["method"] == "not comparable" and math.isnan(uni["ci_low"])
    assert math.isnan(uni["diff"]) and "train.epochs 2 in A vs 4 in B" in uni["note"]
    assert alt["method"] == "paired" and alt["ci_low"] > 0  # trained alike: compared
    md = (tmp_path / "cmp.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| uni "))
    assert "not comparable: train.epochs 2 in A vs 4 in B" in row and "[" not in row
    assert "Warning: uni: not comparable: train.epochs 2 in A vs 4 in B." in md
    assert "Warning: uni" in capsys.readouterr().out


def test_tuned_and_matched_keys_may_differ_but_not_the_recipe_version(tmp_path):
    a = write_folder(tmp_path / "a", ALIKE)
    b = write_folder(tmp_path / "b", ALIKE, top1=B_TOP1)

    def tuned(rec):  # B is the tuned sweep: lr its own tune result
        rec.science, rec.tuned = {**rec.science, "train.lr": 0.004}, {"train.lr": 0.004}

    def matched(rec):  # B solved alternating's depth (match:): an own model key
        rec.science = {**rec.science, "model.depth": 3}
        rec.own_keys = [*rec.own_keys, "model.depth"]

    _edit(b, "uni", tuned)
    _edit(b, "alternating", matched)
    frame = _compare(a, b, tmp_path)
    assert list(frame["method"]) == ["paired", "paired"], frame["note"]
    _edit(b, "uni", lambda rec: rec.science.update({RECIPE_KEY: rec.science[RECIPE_KEY] + 1}))
    uni = _compare(a, b, tmp_path).loc["uni"]
    assert uni["method"] == "not comparable" and "runs of different recipe versions" in uni["note"]
    _edit(b, "alternating", lambda rec: rec.science.update({"model.dim": 48}))  # not own
    alt = _compare(a, b, tmp_path).loc["alternating"]
    assert "model.dim" in alt["note"] and alt["method"] == "not comparable"


def test_a_declared_confound_keeps_the_interval_and_says_so(tmp_path):
    a = write_folder(tmp_path / "a", ALIKE)
    b = write_folder(tmp_path / "b", ALIKE, top1=B_TOP1)

    def lr(rec):
        rec.science = {**rec.science, "train.lr": 0.5}
        rec.confounds = {"train.lr": "B is the high-lr rerun"}

    _edit(b, "uni", lr)
    uni = _compare(a, b, tmp_path).loc["uni"]
    assert uni["method"] == "paired" and np.isfinite(uni["ci_low"])
    assert "confounded (declared): train.lr" in uni["note"]


def test_equal_differences_get_the_floor_of_their_discordant_counts(tmp_path):
    """Two seeds whose B − A happen to be equal: not a zero-width interval, but the one the
    recorded per-image correctness gives (McNemar), and no claim with n < 3."""
    rng = np.random.default_rng(3)
    ca = {s: rng.random(500) < 0.6 for s in (0, 1)}
    cb = {s: ca[s] | (rng.random(500) < 0.1) for s in (0, 1)}  # B right on more images
    shift = {s: 100 * (cb[s].mean() - ca[s].mean()) for s in (0, 1)}
    for s in (0, 1):  # the same difference on both seeds, as in issue 34
        cb[s][np.flatnonzero(~cb[s])[: round(5 * (max(shift.values()) - shift[s]))]] = True
    diffs = [100 * (cb[s].mean() - ca[s].mean()) for s in (0, 1)]
    assert diffs[0] == pytest.approx(diffs[1]) and diffs[0] > 0
    folders = {}
    for side, correct in (("a", ca), ("b", cb)):
        exp = write_folder(tmp_path / side, {"alternating": {}})
        for s in (0, 1):
            rec = runs.read(exp / f"runs/alternating-s{s}")
            rec.top1, rec.val_images = 100 * correct[s].mean(), 500
            rec.val_correct = runs.encode_correct(correct[s])
            rec.write(exp / f"runs/alternating-s{s}")
        (exp / "runs" / "alternating-s2").joinpath("result.json").unlink()  # two seeds
        folders[side] = exp
    alt = _compare(folders["a"], folders["b"], tmp_path).loc["alternating"]
    floor = np.mean([mcnemar_var(cb[s], ca[s]) for s in (0, 1)])
    half = stats.t.ppf(0.975, 1) * math.sqrt(floor / 2)
    assert alt["diff"] == pytest.approx(diffs[0]) and bool(alt["floored"])
    assert alt["ci_high"] - alt["diff"] == pytest.approx(half) and half > 1
    assert "evaluation-noise floor" in alt["note"] and "n < 3" in alt["note"]
