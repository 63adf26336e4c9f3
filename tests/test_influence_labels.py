"""Influence outputs a reader can compare: raw attention magnitudes kept beside the drawn
shares (issue 32 item 1), every row naming its weights (item 6: pretrained NAME, not init)."""

from __future__ import annotations

from pathlib import Path

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


def test_a_pretrained_configs_weights_are_named_not_called_init(tmp_path):
    """A config starting from published weights is analysed on them, and every label, title
    and CSV row says "pretrained NAME", never "init"."""
    from ablations.schema.catalog import load_catalog
    from ablations.schema.config import apply
    from tests.fixtures.reference_io import unpack

    f = torch.load("tests/fixtures/reference/train-alternating-4x4.pt", weights_only=False)
    path = tmp_path / "tiny-ref.th"
    torch.save({"state_dict": unpack(f["state_dict"])}, path)  # the published files' layout
    o = dict(f["ours"])
    model = {k: o[k] for k in ("traversal", "pooling", "depth", "expansion", "dim",
                               "patch_size", "release")}  # fmt: skip
    cfg = apply(load_catalog().protocol("smoke"),
                {"model": {**model, "pretrained": str(path)},
                 "data": {"img_size": o["img_size"][0], "num_classes": o["num_classes"]}},
                "test")  # fmt: skip
    opts = ic.Options(images=2, inputs="random", probes=1)
    ic.run([ic.Target("alternating", cfg)], opts, tmp_path / "out", "test")
    out = tmp_path / "out"
    for name in ("influence.csv", "attention.csv"):
        assert set(pd.read_csv(out / name)["stage"]) == {"pretrained tiny-ref.th"}, name
    assert (out / "influence_depth_pretrained.png").is_file()
    assert not list(out.glob("*_init.png"))
    text = (out / "influence.md").read_text()
    assert "Published weights, before training (pretrained tiny-ref.th)" in text
    assert ic.weights_label(cfg, "init") == "pretrained tiny-ref.th"
    assert ic.weights_label(cfg, "trained") == "trained"
    plain = apply(cfg, {"model": {"pretrained": None}}, "test")
    assert ic.weights_label(plain, "init") == "init"


def test_the_row_label_and_title_name_the_pretrained_weights(monkeypatch):
    from ablations.report import influence as fig

    r = ic.analyse(tiny("uni"), torch.randn(1, 3, 12, 16), "uni", "pretrained vil-tiny",
                   ic.Options(images=1, probes=1))  # fmt: skip
    assert r.label.endswith("pooling, pretrained vil-tiny")
    titles = []
    monkeypatch.setattr(fig, "_grid_figure", lambda rows, labels, title, *a, **k: titles.append(
        (title, labels)))  # fmt: skip
    fig.write_figures([r], Path("unused"))
    assert titles and all("weights: pretrained vil-tiny" in t for t, _ in titles)
    assert all("pretrained vil-tiny" in lab for _, labels in titles for lab in labels)


def test_provenance_states_the_graphs_peak_memory_which_the_chunk_bounds(tmp_path, capsys):
    """The peak printed is the autograd graph's (GraphMeter: the tensors it saved), per
    model, so it shrinks with --chunk; the process's RSS high-water mark would not."""
    import json

    from ablations.report.influence_table import influence_section
    from ablations.schema.catalog import load_catalog

    (target,) = ic.traversal_targets(load_catalog().protocol("smoke"), ["bi"], {})
    peaks = {}
    for chunk in (1, 4):
        out = tmp_path / f"c{chunk}"
        ic.run([target], ic.Options(images=4, inputs="random", probes=1, chunk=chunk), out, "t")
        meta = json.loads((out / "provenance.json").read_text())
        peaks[chunk] = meta["graph_peak_mib"]
        assert meta["memory"]["bi/init"]["graph_peak_mib"] == peaks[chunk]
        assert "cuda_peak_mib" not in meta  # CPU: no CUDA figure claimed
        assert f"(graph peak {peaks[chunk]:.1f} MiB)" in capsys.readouterr().out
    assert 0 < peaks[1] * 3 < peaks[4]  # 4 images' graph: ~4 single-image ones
    (tmp_path / "influence").symlink_to(tmp_path / "c4")
    assert "- Peak memory: autograd graph" in influence_section(tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the GPU path)")
def test_on_cuda_the_allocators_peak_is_stated_and_the_maps_match_the_cpus(tmp_path):
    import json

    from ablations.schema.catalog import load_catalog

    (target,) = ic.traversal_targets(load_catalog().protocol("smoke"), ["bi"], {})
    frames = {}
    for device in ("cpu", "cuda"):
        opts = ic.Options(images=4, inputs="random", probes=2, device=device)
        ic.run([target], opts, tmp_path / device, "t")
        frames[device] = pd.read_csv(tmp_path / device / "influence.csv")
    meta = json.loads((tmp_path / "cuda" / "provenance.json").read_text())
    assert meta["cuda_peak_mib"] > 0 and meta["graph_peak_mib"] > 0
    for col in ("entropy", "centre_border"):
        assert frames["cuda"][col].to_numpy() == pytest.approx(frames["cpu"][col].to_numpy(),
                                                               rel=1e-3)  # fmt: skip
