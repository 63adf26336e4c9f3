"""Tuning: per-variant studies over a declared search space (ablations/schema/tune_space.py),
trained on the tuning split held out of the training set; ``sweep --tuned`` trains with the
best values (``worker.resolve_tuned``)."""
