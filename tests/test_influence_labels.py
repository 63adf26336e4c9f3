"""Influence outputs a reader can compare: raw attention magnitudes kept beside the drawn
shares (issue 32 item 1), every row naming its weights (item 6: pretrained NAME, not init)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import vil
from ablations.app import influence_command as ic
from ablations.report.influence_table import write_outputs
from vil import implicit_attention as ia
from vil.influence import pooled_positions


def tiny(traversal: str) -> vil.VisionLSTM:
    m = vil.create_model("nano", traversal=traversal, num_classes=3, img_size=(12, 16),
                         patch_size=4, depth=2)  # fmt: skip
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.eval()


def test_attention_csv_keeps_the_raw_magnitudes_per_direction(tmp_path):
    m, x = tiny("bi"), torch.randn(2, 3, 12, 16)
    r = ic.analyse(m, x, "bi", "init", ic.Options(images=2, probes=1))
    write_outputs([r], tmp_path, {})
    frame = pd.read_csv(tmp_path / "attention.csv")
    assert {"name", "pooling", "stage", "block", "query", "direction", "raw_row_sum",
            "raw_max", "share_max"} <= set(frame.columns)  # fmt: skip
    (first, _) = ia.implicit_attention(m, x)
    rows = first.weights[..., pooled_positions(m), :].abs()  # (B, K, NH, Q, N)
    expect = rows.sum(-1).mean(dim=(0, 2, 3))  # per direction: mean row sum of raw |A|
    got = frame[(frame["block"] == 1) & (frame["query"] == "pooled")].set_index("direction")
    for k, name in enumerate(first.directions):
        assert got.loc[name, "raw_row_sum"] == pytest.approx(float(expect[k]), rel=1e-9)
    assert frame["raw_row_sum"].nunique() > 1  # magnitudes, not the shares' constant 1
    assert (frame["share_max"] <= 1).all() and (frame["share_max"] > 0).all()
