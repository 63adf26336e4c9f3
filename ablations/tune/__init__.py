"""Tuning (issue #15): per-variant Optuna studies over a declared search space, on the
tuning split held out of the training set; ``sweep --tuned`` trains with the best values."""
