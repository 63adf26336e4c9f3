"""The evaluation-noise floor of a difference's spread, and no claim from fewer than 3 seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ablations.report.comparable import check_runs
from ablations.report.noise import Eval, mcnemar_var, noise
from ablations.report.stats import INCONCLUSIVE_N, diff_to_reference, verdict_for
from ablations.schema.config import RECIPE_KEY, RECIPE_VERSION
from ablations.schema.record import RunRecord, decode_correct, encode_correct


def test_floor_is_the_hand_computation_from_discordant_counts():
    a = np.zeros(500, bool)
    b = np.zeros(500, bool)
    a[:10] = True  # right only in a: b10 = 10
    b[10:13] = True  # right only in b: b01 = 3
    # Var(acc_a - acc_b) = (b10 + b01 - (b10 - b01)^2 / N) / N^2, in pp^2
    hand = (13 - 7**2 / 500) / 500**2 * 100**2
    assert mcnemar_var(a, b) == pytest.approx(hand)


def test_correctness_round_trips_through_the_record():
    bits = np.random.default_rng(0).random(501) > 0.5
    assert np.array_equal(decode_correct(encode_correct(bits)), bits)


def test_equal_differences_give_a_nonzero_interval_and_no_claim():
    a, b = {0: 61.4, 1: 62.0}, {0: 60.0, 1: 60.6}  # the same +1.40 on both seeds
    evals = {s: Eval(None, 500) for s in (0, 1)}
    plain = diff_to_reference(a, b)
    assert plain.low == plain.high  # what the report printed before: [+1.40, +1.40]
    ci = diff_to_reference(a, b, noise=noise(a, b, evals, evals))
    assert ci.floored and ci.high - ci.low > 1.0
    assert verdict_for(ci, 0, math.inf) == INCONCLUSIVE_N


def test_floor_from_recorded_correctness_decides_the_width():
    rng = np.random.default_rng(1)
    ca = {s: rng.random(500) < 0.7 for s in (0, 1, 2)}
    cb = {s: rng.random(500) < 0.6 for s in (0, 1, 2)}
    a = {s: 100 * ca[s].mean() for s in ca}
    b = {s: a[s] - 10.0 for s in ca}  # identical differences: zero seed spread
    nz = noise(a, b, {s: Eval(ca[s]) for s in ca}, {s: Eval(cb[s]) for s in cb})
    ci = diff_to_reference(a, b, noise=nz)
    floor = np.mean([mcnemar_var(ca[s], cb[s]) for s in ca])
    half = stats.t.ppf(0.975, 2) * math.sqrt(floor / 3)
    assert ci.high - ci.diff == pytest.approx(half) and ci.floored


def _rec(variant: str, seed: int, own: dict, confounds: dict | None = None) -> RunRecord:
    science = {"model.traversal": variant, "train.epochs": 2, "train.lr": 1e-3, "train.seed": seed}
    science |= own
    own_keys = ["model.traversal", *own]
    return RunRecord(variant=variant, seed=seed, science=science, own_keys=own_keys,
                     confounds=confounds or {})  # fmt: skip


def test_a_variants_own_training_key_is_a_confound():
    runs = [_rec("alternating", s, {}) for s in (0, 1)]
    runs += [_rec("bi", s, {"train.epochs": 4}) for s in (0, 1)]
    check = check_runs(runs, "model.traversal")
    assert check.keys == ["train.epochs"]
    assert "not comparable: bi sets train.epochs = 4 alone" in check.note()
    # a model.* own key is the design: comparable
    design = [_rec("alternating", 0, {}), _rec("bi", 0, {"model.depth": 12})]
    assert check_runs(design, "model.traversal").keys == []


def test_a_declared_confound_keeps_the_pair_but_says_so():
    why = {"train.lr": "bi_shared needs a smaller lr"}
    runs = [_rec("alternating", s, {}, why) for s in (0, 1)]
    runs += [_rec("bi_shared", s, {"train.lr": 0.5}, why) for s in (0, 1)]
    check = check_runs(runs, "model.traversal")
    assert check.keys == [] and check.note() == "confounded (declared): train.lr"
    undeclared = [_rec("alternating", 0, {}), _rec("bi_shared", 0, {"train.lr": 0.5})]
    assert check_runs(undeclared, "model.traversal").keys == ["train.lr"]


def test_runs_of_another_recipe_version_are_not_paired():
    old, new = _rec("alternating", 0, {}), _rec("bi", 0, {})
    old.science[RECIPE_KEY], new.science[RECIPE_KEY] = 1, RECIPE_VERSION
    assert "recipe versions" in check_runs([old, new], "model.traversal").note()
