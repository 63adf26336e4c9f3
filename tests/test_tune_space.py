"""The `tune:` block: defaults, validation (one line naming the key), ranges and edges."""

from __future__ import annotations

import pytest

from ablations.report.tuning import edge_warnings
from ablations.schema.catalog import load_catalog
from ablations.schema.config import ConfigError, RunConfig
from ablations.schema.record import RunRecord
from ablations.schema.tune_space import TuneSpec, on_edge, parse_tune, ranges, start_points


def test_default_space_is_lr_and_weight_decay_over_a_quarter_to_four_times_the_protocol():
    proto = load_catalog().protocol("paper")
    bounds = ranges(TuneSpec(), proto, "t")
    assert bounds["train.lr"] == pytest.approx((proto.train.lr / 4, proto.train.lr * 4, True))
    wd = proto.train.weight_decay
    assert bounds["train.weight_decay"] == pytest.approx((wd / 4, wd * 4, True))
    assert start_points(TuneSpec(), proto, bounds, "t") == [
        {"train.lr": proto.train.lr, "train.weight_decay": wd}
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"pruner": "median"}, "x.tune.pruner: unknown 'median'; valid: successive_halving"),
        ({"budget": 3}, "x.tune.budget: unknown key; valid: budget_epochs"),
        ({"trials": 0}, "x.tune.trials: expected a positive integer, got 0"),
        ({"space": {"train.epochs": {}}}, "x.tune.space.train.epochs: not a float config key"),
        ({"space": {"train.lr": {"low": -1}}}, "x.tune.space.train.lr.low: expected a positive"),
        ({"space": {"train.lr": {"low": 1, "low_factor": 2}}}, "give low or low_factor, not"),
        ({"start": [{"train.betas": 1}]}, "x.tune.start[0].train.betas: not in tune.space"),
    ],
)
def test_bad_tune_blocks_are_one_line_naming_the_key(raw, message):
    with pytest.raises(ConfigError, match=r"^f: experiments\.") as err:
        parse_tune(raw, "f", "experiments.x.")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_factor_of_a_zero_value_and_a_start_outside_the_range_are_errors():
    zero = RunConfig()
    zero.train.weight_decay = 0.0
    with pytest.raises(ConfigError, match="weight_decay: the protocol's value is 0.0"):
        ranges(TuneSpec(), zero, "t")
    spec = parse_tune({"space": {"train.lr": {}}, "start": [{"train.lr": 8}]}, "f", "e.")
    with pytest.raises(ConfigError, match=r"tune.start\[0\].train.lr: .* is outside"):
        start_points(spec, RunConfig(), ranges(spec, RunConfig(), "t"), "t")


def test_edges_are_the_outer_tenth_on_a_log_scale():
    assert on_edge(1.05, 1, 100, True) and on_edge(95, 1, 100, True)
    assert not on_edge(10, 1, 100, True) and not on_edge(1.6, 1, 100, True)  # 10% of log = 1.58
    rec = RunRecord(variant="bi", tuned={"train.lr": 3.9e-3},
                    tune_ranges={"train.lr": [2.5e-4, 4e-3, True]})  # fmt: skip
    (line,) = edge_warnings([rec])
    assert line.startswith("bi: best train.lr=0.0039 lies on the edge of its range")
    rec.tuned = {"train.lr": 1e-3}
    assert edge_warnings([rec]) == []


def test_pruner_names_map_to_optuna_pruners():
    import optuna

    from ablations.study.tune import make_pruner

    assert isinstance(make_pruner("successive_halving", 5), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner("hyperband", 5), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner("none", 5), optuna.pruners.NopPruner)
    assert TuneSpec().pruner == "successive_halving"  # the default the docs name


def test_proposals_depend_on_seed_and_trial_number_only():
    import optuna

    from ablations.study.tune import propose

    def proposals(seed: int, n: int) -> list[float]:
        study = optuna.create_study(direction="maximize")
        out = []
        for _ in range(n):
            trial = study.ask()
            out.append(propose(study, trial, seed, {"train.lr": (1e-4, 1e-2, True)})["train.lr"])
            study.tell(trial, 0.0)
        return out

    first = proposals(0, 4)
    assert first == proposals(0, 4) and first != proposals(1, 4)
    assert len(set(first)) == 4 and max(first) / min(first) > 2  # spread, not clustered
