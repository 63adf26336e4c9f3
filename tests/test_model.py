"""The ViL model: parameter counts, causality, every traversal x pooling, determinism."""

from __future__ import annotations

import pytest
import torch

import vil
from vil import POOLINGS, TRAVERSALS, count_params, create_model

# docs/vil-facts.md "The ViL model", counted on the reference code (hub VisionLSTM,
# legacy_norm=True, and the training code's create_block_stack): ViL-T, 128 px, patch 16,
# 100 classes, v1 release.
PAPER_PARAMS = {
    "uni": 5_889_316,
    "alternating": 5_889_316,
    "bi_shared": 5_889_316,
    "quad_shared": 5_889_316,
    "quad_alternating": 5_889_316,
    "bi": 6_285_796,
    "quad": 7_078_756,
}
VISION_LSTM2_PARAMS = 6_019_684  # VisionLSTM2(dim=192, depth=12, 128 px, 100 classes, legacy_norm)


@pytest.mark.parametrize("traversal", sorted(PAPER_PARAMS))
def test_param_counts_equal_the_reference(traversal):
    pooling = "last" if traversal == "uni" else "bilateral_avg"
    n = count_params(create_model("tiny", traversal, pooling, 128, 16, 100))
    assert n == PAPER_PARAMS[traversal]


def test_v2_release_param_count_equals_vision_lstm2():
    model = create_model("tiny", "alternating", release="v2")
    assert (model.cfg.conv, model.cfg.pooling) == ("grid2d", "bilateral_concat")
    assert count_params(model) == VISION_LSTM2_PARAMS


@pytest.mark.parametrize("init,num_blocks", [("paper", 1), ("fixed", 24)])
def test_proj_down_std_follows_the_init(init, num_blocks):
    """Trained models: std 2/sqrt(dim) (num_blocks=1); the fixed init: 2/depth/sqrt(dim)."""
    torch.manual_seed(0)
    model = create_model("tiny", "alternating", init=init)
    w = torch.cat([b.layer.proj_down.weight.flatten() for b in model.blocks])
    want = 2 / num_blocks / 192**0.5
    assert abs(w.std().item() / want - 1) < 0.01  # 24 * 384 * 192 samples: error ~0.2%


def test_pre_head_norm_follows_the_pooling_width():
    model = create_model("nano", "alternating", "bilateral_concat", 16, 4, 10)
    assert model.head_norm.weight.shape == model.head_norm.bias.shape == (64,)
    assert model.head_norm.eps == 1e-6
    assert isinstance(create_model("nano", num_classes=0).head_norm, torch.nn.Identity)


def nano(traversal="alternating", pooling="bilateral_avg", **kw):
    kw.setdefault("img_size", 16)
    return create_model("nano", traversal, pooling, patch_size=4, num_classes=10, **kw)


def token_jacobian_pattern(model, t):
    """Which input tokens output token ``t`` of the block stack depends on (grad != 0)."""
    x = model.tokens(torch.randn(1, 3, *model.cfg.img_size)).detach().requires_grad_()
    y = x
    for block in model.blocks:
        y = block(y)
    y[0, t].sum().backward()
    return x.grad[0].abs().sum(-1) != 0


def test_uni_is_causal_in_traversal_order():
    model = nano("uni", "avg", depth=3)
    n = model.layout.length
    for t in range(n):
        dep = token_jacobian_pattern(model, t)
        assert dep[: t + 1].all() and not dep[t + 1 :].any(), t


def test_causal_in_column_order_too():
    model = create_model(
        "nano", "col_alternating", "avg", img_size=(12, 16), patch_size=4, num_classes=3, depth=1
    )  # block 0 runs column-major only
    h, w = model.cfg.grid
    order = vil.ORDERS["col"](h, w).tolist()
    for i, t in enumerate(order):
        dep = token_jacobian_pattern(model, t)
        assert dep[order[: i + 1]].all() and not dep[order[i + 1 :]].any()


@pytest.mark.parametrize(
    "traversal", ["alternating", "bi", "quad_alternating", "snake_alternating"]
)
def test_two_blocks_see_every_patch(traversal):
    model = nano(traversal, "avg", depth=2, img_size=(12, 16))
    for t in range(model.layout.length):
        assert token_jacobian_pattern(model, t).all(), t


@pytest.mark.parametrize("pooling", POOLINGS.names())
@pytest.mark.parametrize("traversal", TRAVERSALS.names())
def test_every_traversal_and_pooling_trains_a_step(traversal, pooling):
    model = nano(traversal, pooling, img_size=(16, 12))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(3, 3, 16, 12), torch.tensor([0, 1, 2])
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    opt.step()
    assert torch.isfinite(model(x)).all()
    assert model.head.in_features == POOLINGS[pooling].out_dim(model.cfg.dim)


@pytest.mark.parametrize("conv", ["causal1d", "grid2d"])
@pytest.mark.parametrize("traversal", ["alternating", "quad", "bi_shared"])
def test_both_conv_kinds(conv, traversal):
    model = nano(traversal, "middle_cls", conv=conv, img_size=(12, 16))
    out = model(torch.randn(2, 3, 12, 16))
    out.sum().backward()
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_grid_conv_sees_the_spatial_neighbourhood():
    """v2: the conv output of a patch depends on its 3x3 neighbours, not on its sequence ones."""
    model = nano("uni", "avg", conv="grid2d", img_size=(16, 16))
    layer = model.blocks[0].layer
    x = torch.randn(1, model.layout.length, layer.inner, requires_grad=True)
    c = vil.layers.grid_conv(x, layer.conv_weight, layer.conv_bias, layer.patch_pos, 4, 4)
    c[0, 0, 5].sum().backward()  # patch (1, 1)
    deps = set((x.grad[0].abs().sum(-1) != 0).nonzero().flatten().tolist())
    assert deps == {0, 1, 2, 4, 5, 6, 8, 9, 10}


def test_unknown_names_and_options_fail_loudly():
    with pytest.raises(KeyError, match="valid: uni, bi"):
        create_model("nano", "zigzag")
    with pytest.raises(KeyError, match="valid: avg"):
        create_model("nano", "alternating", "max")
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        create_model("huge")
    with pytest.raises(ValueError, match="unknown model option"):
        create_model("nano", dimm=3)
    with pytest.raises(KeyError, match="unknown release 'v3'; valid: v1, v2"):
        create_model("nano", release="v3")
    with pytest.raises(KeyError, match="unknown init 'wang'; valid: paper, fixed"):
        create_model("nano", init="wang")


def train_step_state(seed):
    torch.manual_seed(seed)
    model = nano("quad", "bilateral_concat", img_size=(16, 16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    return model.state_dict()


def test_seeded_construction_and_step_are_bit_identical():
    a, b = train_step_state(3), train_step_state(3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = train_step_state(4)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_flops_follow_the_directions():
    flops = {t: vil.count_flops(nano(t, "avg")) for t in ["uni", "alternating", "bi", "quad"]}
    assert flops["uni"] == flops["alternating"] > 0
    assert flops["alternating"] < flops["bi"] < flops["quad"]


def test_flop_count_is_the_architecture_formula():
    """count_flops = patch embedding + per block (proj up, headwise q/k/v, gates on
    cat(q, k, v), the cell's two (N, N) products per head, proj down) x directions + head."""
    dim, depth, p, img, classes, bs, heads = 32, 2, 4, 16, 10, 4, 4
    N, inner = (img // p) ** 2, 2 * dim
    per_direction = (
        N * (dim * 2 * inner + inner * 2 * bs + inner * bs + 3 * inner * 2 * heads)
        + 2 * N * N * inner  # q k^T and C v over all heads: 2 * heads * N * N * (inner / heads)
    )
    shared = N * inner * dim  # proj down once per block, after the directions are summed
    for traversal, K in [("uni", 1), ("bi", 2), ("quad", 4)]:
        want = 2 * (N * 3 * p * p * dim + depth * (K * per_direction + shared) + dim * classes)
        # proj up is shared too: it runs once per block, not once per direction
        want -= 2 * depth * (K - 1) * N * dim * 2 * inner
        assert vil.count_flops(nano(traversal, "avg")) == want, traversal


@pytest.mark.parametrize("release", ["v1", "v2"])
@pytest.mark.parametrize("traversal", vil.TRAVERSALS.names())
def test_fast_products_match_the_plain_products(traversal, release):
    """Grouped headwise blocks and folded gates (with v2's q/k/v biases folded into the gate
    bias) compute the architecture's maths."""
    model = nano(traversal, "avg", release=release)
    with torch.no_grad():  # non-zero gate weights and biases so the gate paths matter
        for name, p in model.named_parameters():
            if "gate_weight" in name or name.endswith("_bias"):
                p.normal_(std=0.1)
    x = torch.randn(2, 3, 16, 16)
    fast = model(x)
    plain = model(x, plain=True)
    assert torch.allclose(fast, plain, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("traversal", vil.TRAVERSALS.names())
def test_bf16_autocast_trains_a_step(traversal):
    """The CUDA recipe's autocast, run on CPU: the hand-written backwards meet bf16 inputs."""
    model = nano(traversal, "bilateral_avg")
    x = torch.randn(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.bfloat16
    out.float().square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    ref = model(x)
    assert (out.float() - ref).abs().max() <= 0.05 * ref.abs().max()


def test_chunkwise_model_matches_parallel_model():
    model = nano("bi", "avg", img_size=(32, 32))  # 64 tokens
    x = torch.randn(2, 3, 32, 32)
    ref = model(x)
    for block in model.blocks:
        block.layer.cell, block.layer.chunk_size = "chunkwise", 24
    assert torch.allclose(model(x), ref, atol=1e-5)
