"""One registry idiom: every named part is on a vil.Registry with a register_* function, and
the run config's allowed values are read from those registries (an added part is valid
everywhere at once)."""

from __future__ import annotations

import pytest

import vil
from ablations.schema import datasets
from ablations.schema.config import CHOICES, ConfigError, RunConfig, apply
from ablations.train import trackers
from vil import mlstm

REGISTRIES = {
    "model.size": vil.SIZES,
    "model.traversal": vil.TRAVERSALS,
    "model.pooling": vil.POOLINGS,
    "model.release": vil.RELEASES,
    "model.init": vil.INITS,
    "data.dataset": datasets.KINDS,
}


def test_every_named_part_is_on_a_registry():
    for reg in (*REGISTRIES.values(), trackers.TRACKERS, mlstm.FORMS, vil.ORDERS, vil.PRETRAINED):
        assert isinstance(reg, vil.Registry), reg


@pytest.mark.parametrize("key", list(REGISTRIES))
def test_config_choices_are_the_registry_names(key):
    assert CHOICES[key]() == REGISTRIES[key].names()


def test_cell_choices_are_the_registered_forms():
    assert set(mlstm.FORMS.names()) <= set(CHOICES["model.cell"]())


def test_a_registered_size_is_valid_in_the_config_at_once(monkeypatch):
    monkeypatch.setitem(vil.SIZES._entries, "wee_i33", (16, 1))
    cfg = apply(RunConfig(), {"model": {"size": "wee_i33"}}, "--set")
    assert cfg.model.size == "wee_i33"
    monkeypatch.delitem(vil.SIZES._entries, "wee_i33")
    with pytest.raises(ConfigError, match="unknown size 'wee_i33'; valid: nano"):
        apply(RunConfig(), {"model": {"size": "wee_i33"}}, "--set")


def test_register_functions_refuse_a_second_entry_under_one_name():
    with pytest.raises(ValueError, match="size 'nano' is already registered"):
        vil.register_size("nano", 1, 1)
    with pytest.raises(ValueError, match="mLSTM form 'parallel' is already registered"):
        mlstm.register_form("parallel", mlstm.recurrent)
    with pytest.raises(ValueError, match="tracker 'mlflow' is already registered"):
        trackers.register_tracker("mlflow", trackers.TRACKERS["wandb"])
