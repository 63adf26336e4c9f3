"""Ablation harness for Vision-LSTM: configs, data, training, sweeps and reports."""
