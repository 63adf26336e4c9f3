"""Published weights at another resolution: the position embedding is resampled onto the
model's patch grid (bicubic, antialiased, on explicit (h, w) grids), with a one-line notice;
every other weight loads as it does at the checkpoint's own resolution."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import vil
from tests.fixtures.reference_io import unpack
from vil.convert import ConversionError, convert_reference_state_dict

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "train-alternating-4x4.pt"


def _reference() -> tuple[dict, dict]:
    """A converted-checkpoint fixture (4x4 grid of 2 px patches) and its model options."""
    f = torch.load(FIXTURE, weights_only=False)
    return unpack(f["state_dict"]), dict(f["ours"])


def _model(opts: dict, img_size: tuple[int, int]) -> vil.VisionLSTM:
    o = {**opts, "img_size": img_size}
    return vil.create_model("nano", o.pop("traversal"), o.pop("pooling"), **o)


def _expected(embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Each feature's plane resized on its own (features as the batch): (h * w, D)."""
    planes = embed[0].permute(2, 0, 1).unsqueeze(1)  # (D, 1, H, W)
    out = F.interpolate(planes, size=grid, mode="bicubic", antialias=True)
    return out[:, 0].permute(1, 2, 0).reshape(grid[0] * grid[1], -1)


@pytest.mark.parametrize("source_grid", [(4, 4), (2, 5)])
def test_pos_embed_is_resampled_onto_a_non_square_grid(caplog, source_grid):
    sd, opts = _reference()
    dim = opts["dim"]
    if source_grid != (4, 4):  # a non-square source: rows and columns cannot be confused
        sd["pos_embed.embed"] = torch.randn(1, *source_grid, dim, generator=torch.Generator())
    model = _model(opts, (6, 12))  # 2 px patches: a 3 x 6 grid
    with caplog.at_level(logging.INFO, logger="vil"):
        vil.load_reference_state_dict(model, sd, source="train")
    want = _expected(sd["pos_embed.embed"], (3, 6))
    torch.testing.assert_close(model.pos_embed.detach()[0], want, rtol=1e-6, atol=1e-6)
    lines = [r.getMessage() for r in caplog.records if r.name == "vil"]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert f"{source_grid[0]}x{source_grid[1]} patch grid to the model's 3x6" in lines[0]


def test_everything_but_the_pos_embed_loads_as_at_the_native_grid(caplog):
    sd, opts = _reference()
    native = _model(opts, opts["img_size"])
    vil.load_reference_state_dict(native, sd)
    assert not [r for r in caplog.records if r.name == "vil"]  # same grid: no notice
    grid = _model(opts, (12, 4))  # 6 x 2
    vil.load_reference_state_dict(grid, sd)
    ours, theirs = grid.state_dict(), native.state_dict()
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        if key != "pos_embed":
            assert torch.equal(ours[key], value), key
    assert ours["pos_embed"].shape == (1, 12, opts["dim"])
    with torch.no_grad():  # and it runs at its own resolution
        assert grid(torch.randn(2, 3, 12, 4)).shape == (2, opts["num_classes"])


def test_upsampled_constant_and_ramp_stay_so():
    # A smooth embedding stays smooth: a constant stays constant, a row ramp stays monotone.
    const = torch.full((1, 4, 4, 3), 0.25)
    assert torch.allclose(vil.resample_pos_embed(const, (7, 9)), torch.full((1, 7, 9, 3), 0.25))
    ramp = torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 4, 2)
    out = vil.resample_pos_embed(ramp, (8, 3))
    assert out.shape == (1, 8, 3, 2) and bool((out[0, 1:, :, :] > out[0, :-1, :, :]).all())
    assert torch.allclose(out[0, :, 0], out[0, :, 2])  # constant along the columns


def test_create_model_at_another_resolution_and_what_stays_an_error(tmp_path):
    sd, opts = _reference()
    path = tmp_path / "ckpt.th"
    torch.save({"state_dict": sd}, path)  # the published files' layout
    o = {**opts, "img_size": (10, 10), "pretrained": str(path)}
    model = vil.create_model("nano", o.pop("traversal"), o.pop("pooling"), **o)
    assert model.pos_embed.shape == (1, 25, opts["dim"])
    with pytest.raises(ConversionError, match=r"'pos_embed.embed' has shape \(1, 4, 4, 7\)"):
        vil.load_reference_state_dict(model, {**sd, "pos_embed.embed": torch.zeros(1, 4, 4, 7)})
    with pytest.raises(ConversionError, match=r"'pos_embed.embed' has shape \(1, 4, 4, 16\)"):
        convert_reference_state_dict(sd, model, gradients=True)  # no gradient on another grid
