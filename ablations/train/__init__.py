"""Training of one run: ``train(config, run_dir) -> result dict`` (see loop.py)."""

from ablations.schema.files import PathError
from ablations.train.loop import Interrupted, train
from ablations.train.steps import TrialFailed

__all__ = ["Interrupted", "PathError", "TrialFailed", "train"]
