"""Sweeps: an experiment (variant x seed grid) as one Optuna study, run by any number of workers.

Flow: experiments.yaml -> ``spec.resolve`` (every point's config and fingerprint) ->
``checks`` (device, data, storage) -> ``spec.check_records`` (finished runs still match) ->
experiment.json -> the study layer (ablations/study: enqueue the grid once, under the grid
lock) -> ``worker``s claim WAITING trials and train them in ``runs/<variant>-s<seed>`` (the
run record) -> ``rows`` (runs.csv of every record in the folder) -> report. ``plan`` is the
dry run, ``matching`` the iso-parameter / iso-FLOP solver; the CLI glue is
ablations/app/sweep_command.py.
"""

from ablations.sweep.spec import Sweep, SweepError, SweepOptions, experiment_dir, resolve

__all__ = ["Sweep", "SweepError", "SweepOptions", "experiment_dir", "resolve"]
