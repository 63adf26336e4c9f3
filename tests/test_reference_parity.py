"""Parity with NX-AI's reference code: the same weights give the same outputs and gradients.

Fixtures (tests/fixtures/reference/, written by make_reference_fixtures.py from the training
code's create_block_stack for every paper traversal, and the v1 / v2 hub models) are loaded
through vil.load_reference_state_dict. The mutation tests check that the comparison fails for
conversions that are wrong in the ways a conversion can be wrong.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vil
from tests.fixtures.reference_io import direction, unpack
from vil.convert import ConversionError, convert_reference_state_dict

FIXTURES = Path(__file__).parent / "fixtures" / "reference"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.pt"))


def fixture(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.pt", weights_only=False)


def build(f: dict) -> vil.VisionLSTM:
    o = dict(f["ours"])
    model = vil.create_model("nano", o.pop("traversal"), o.pop("pooling"), **o)
    return model.eval()


def loaded(name: str) -> tuple[vil.VisionLSTM, dict]:
    f = fixture(name)
    model = build(f)
    vil.load_reference_state_dict(model, unpack(f["state_dict"]), source=f["source"])
    return model, f


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal to float32 round-off, relative to the tensor's scale."""
    return bool((a - b).abs().max() <= 1e-5 * b.abs().max() + 1e-6)


def test_every_paper_traversal_and_both_hub_releases_have_a_fixture():
    traversals = {n.split("-")[1] for n in NAMES if n.startswith("train-")}
    assert traversals == set(vil.PAPER_TRAVERSALS)
    assert {"hub_v1-alternating-3x5", "hub_v2-alternating-3x5"} <= set(NAMES)
    assert sum(p.stat().st_size for p in FIXTURES.glob("*.pt")) < 400_000


@pytest.mark.parametrize("name", NAMES)
def test_outputs_and_gradients_equal_the_reference(name):
    model, f = loaded(name)
    x = f["input"].float().requires_grad_()
    y = model(x)
    assert close(y, f["output"]), (y - f["output"]).abs().max()
    y.backward(f["output_grad"])
    assert close(x.grad, f["input_grad"]), (x.grad - f["input_grad"]).abs().max()
    # the parameters' gradient along the fixture's random direction, mapped onto ours
    tangent = direction(f["param_shapes"], f["grad_seed"])
    ours = convert_reference_state_dict(tangent, model, f["source"], gradients=True)
    terms = [(p.grad.double() * ours[n].double()).sum() for n, p in model.named_parameters()]
    scale = sum(t.abs() for t in terms)
    assert abs(sum(terms) - f["grad_dot"]) <= 1e-5 * scale, (float(sum(terms)), f["grad_dot"])


def _differs(model: vil.VisionLSTM, f: dict) -> bool:
    with torch.no_grad():
        return not close(model(f["input"].float()), f["output"])


def test_missing_pre_head_norm_is_caught():
    model, f = loaded("train-alternating-4x4")
    model.head_norm = torch.nn.Identity()
    assert _differs(model, f)


@pytest.mark.parametrize("name,wrong", [
    ("train-alternating-3x5", "uni"),  # the odd block's flip missing
    ("train-quad_alternating-4x4", "alternating"),  # column-major blocks read row-wise
])  # fmt: skip
def test_missing_flip_is_caught(name, wrong):
    f = fixture(name)
    model = build({**f, "ours": {**f["ours"], "traversal": wrong}})
    vil.load_reference_state_dict(model, unpack(f["state_dict"]), source=f["source"])
    assert _differs(model, f)


@pytest.mark.parametrize("name", ["train-bi-3x5", "train-quad-4x4"])
def test_swapped_direction_sets_are_caught(name):
    model, f = loaded(name)
    layer = model.blocks[0].layer
    with torch.no_grad():
        for p in layer.parameters():
            if p.dim() >= 2 and p.size(0) == len(layer.directions) > 1:
                p.copy_(p.flip(0))  # the sets in the wrong direction order
    assert _differs(model, f)


def test_unturned_grid_conv_kernel_is_caught():
    """v2 hub: the reversed block's 3x3 kernel must turn by 180 degrees onto our grid."""
    model, f = loaded("hub_v2-alternating-3x5")
    with torch.no_grad():
        model.blocks[1].layer.conv_weight.copy_(model.blocks[1].layer.conv_weight.flip(-1, -2))
    assert _differs(model, f)


def test_norm_offsets_are_caught():
    """The reference stores LayerNorm weights as offsets from 1: forgetting the 1 is caught."""
    model, f = loaded("train-uni-4x4")
    with torch.no_grad():
        model.blocks[0].norm.weight.sub_(1)
    assert _differs(model, f)


def test_hub_v2_pairs_land_on_blocks_2i_and_2i_plus_1():
    """Block pairs past 9 too: a rename must not read 'blocks.1' inside 'blocks.11'."""
    f = fixture("hub_v2-alternating-3x5")
    sd, pairs = unpack(f["state_dict"]), 12
    one = {k: v for k, v in sd.items() if k.startswith("blocks.0.")}
    for i in range(pairs):  # pair i: pair 0's weights with skips marking (i, half)
        for k, v in one.items():
            half = 0 if "top_left" in k else 1
            sd[k.replace("blocks.0.", f"blocks.{i}.", 1)] = (
                torch.full_like(v, 10 * i + half) if k.endswith("learnable_skip") else v
            )
    model = build({**f, "ours": {**f["ours"], "depth": 2 * pairs}})
    vil.load_reference_state_dict(model, sd, source="hub_v2")
    for b, block in enumerate(model.blocks):
        assert torch.all(block.layer.skip == 10 * (b // 2) + b % 2), b


def test_one_layer_loads_alone():
    """The layer-level loader (benchmarks.peers uses it for xlstm's mLSTMLayer)."""
    model, f = loaded("train-bi-4x4")
    prefix = "xlstm.blocks.0.xlstm."
    sd = {k[len(prefix) :]: v for k, v in unpack(f["state_dict"]).items() if k.startswith(prefix)}
    layer = build(f).blocks[0].layer
    vil.convert.load_reference_layer(layer, sd)
    want = model.blocks[0].layer.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in layer.state_dict().items())


def test_bad_state_dicts_fail_with_one_line_naming_the_key():
    f = fixture("train-bi-4x4")
    model = build(f)
    sd = unpack(f["state_dict"])
    key = "xlstm.blocks.0.xlstm.q_proj_rev.weight"
    with pytest.raises(ConversionError, match=f"no key '{key}'"):
        vil.load_reference_state_dict(model, {k: v for k, v in sd.items() if k != key})
    with pytest.raises(ConversionError, match="'extra.weight' has no place in the model"):
        vil.load_reference_state_dict(model, {**sd, "extra.weight": torch.zeros(1)})
    with pytest.raises(ConversionError, match=r"'head.1.bias' has shape \(3,\), the model needs"):
        vil.load_reference_state_dict(model, {**sd, "head.1.bias": torch.zeros(3)})
    with pytest.raises(ValueError, match="unknown reference source 'hub'; valid: train, hub_v1"):
        vil.load_reference_state_dict(model, sd, source="hub")
    hub = unpack(fixture("hub_v1-alternating-3x5")["state_dict"])
    with pytest.raises(ConversionError, match="no key"):  # a hub dict read as training code's
        vil.load_reference_state_dict(build(fixture("hub_v1-alternating-3x5")), hub)


def test_create_model_loads_a_checkpoint_file(tmp_path):
    f = fixture("train-alternating-4x4")
    path = tmp_path / "ckpt.th"
    torch.save({"state_dict": unpack(f["state_dict"])}, path)  # the published files' layout
    o = dict(f["ours"])
    traversal, pooling = o.pop("traversal"), o.pop("pooling")
    model = vil.create_model("nano", traversal, pooling, pretrained=str(path), **o)
    assert not _differs(model.eval(), f)


def test_published_names_are_checked_before_any_download():
    with pytest.raises(ValueError, match=r"vil-tiny needs dim/depth \(192, 24\)"):
        vil.create_model("nano", pretrained="vil-tiny")
    with pytest.raises(FileNotFoundError, match="published: vil-tiny"):
        vil.create_model("nano", pretrained="/nonexistent.th")
    assert vil.PRETRAINED["vil2-tiny"].url.endswith("vil2_tiny16_e800_in1k.th")
