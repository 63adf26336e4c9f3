"""Token influence and mLSTM's implicit attention: facts that follow from the equations.

Tiny models on a non-square 3x4 patch grid (so an (h, w) mix-up shows), weights perturbed
away from the init (gate weights non-zero), float32 on CPU.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import vil
from vil import implicit_attention as ia
from vil.influence import influence_per_depth, map_stats, pooled_positions, token_influence
from vil.traversals import ORDERS, TRAVERSALS, register_traversal

GRID = (3, 4)  # (h, w) patches


def tiny(traversal: str, pooling: str = "bilateral_avg", depth: int = 2) -> vil.VisionLSTM:
    """A nano ViL with every weight perturbed: "any weights", not just the init."""
    size = (4 * GRID[0], 4 * GRID[1])
    m = vil.create_model("nano", traversal=traversal, pooling=pooling, num_classes=3,
                         img_size=size, patch_size=4, depth=depth)  # fmt: skip
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.eval()


def images(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 4 * GRID[0], 4 * GRID[1])


def below(T: torch.Tensor) -> torch.Tensor:
    """Entries strictly below the diagonal of the last two dims (s < t), flattened."""
    n = T.size(-1)
    return T[..., torch.ones(n, n, dtype=torch.bool).tril(-1)]


def above(T: torch.Tensor) -> torch.Tensor:
    """Entries strictly above the diagonal (s > t: later tokens), flattened."""
    return below(T.transpose(-1, -2))


def scan_order(model: vil.VisionLSTM, block: int = 0, k: int = 0) -> torch.Tensor:
    layer = model.blocks[block].layer
    L = layer.layout
    return layer.directions[k].sequence_order(L.h, L.w, tuple(L.extra_index))


@pytest.fixture
def diagonal():
    """The README's example order, registered for this test with two traversals over it:
    one direction in every block (``uni``-like) and alternating (the README's)."""
    tag = uuid.uuid4().hex[:6]
    order, uni, alt = f"diagonal_{tag}", f"diag_uni_{tag}", f"diag_alt_{tag}"

    @ORDERS.register(order)
    def diagonal_order(h: int, w: int) -> torch.Tensor:
        return torch.tensor(sorted(range(h * w), key=lambda i: (i // w + i % w, i // w)))

    register_traversal(uni, order)
    register_traversal(alt, order, f"{order}_rev")
    yield {"uni": uni, "alternating": alt}
    for name in (uni, alt):
        TRAVERSALS._entries.pop(name)
    ORDERS._entries.pop(order)


@pytest.mark.parametrize("user", [False, True])
def test_one_direction_is_causal_in_its_scan_order(user, diagonal):
    """Every block scanning one order (uni: rows; a user's diagonal order): output token t
    has zero influence from tokens after t in that order, after any number of blocks."""
    m = tiny(diagonal["uni"] if user else "uni")
    o = scan_order(m)
    assert user == (not torch.equal(o, torch.arange(o.numel())))
    # rows: outputs, columns: inputs, both in scan order
    T = token_influence(m, images(), depth=2, probes=2)[o][:, o]
    assert above(T).abs().max() == 0.0
    assert below(T).min() > 0  # earlier tokens do reach every later one: the test can fail


def test_bi_is_not_causal():
    T = token_influence(tiny("bi"), images(), depth=1, probes=2)
    assert above(T).min() > 0 and below(T).min() > 0


def test_implicit_attention_is_lower_triangular_in_scan_order_only():
    m = tiny("alternating")
    blocks = list(ia.implicit_attention(m, images()))
    for b in blocks:
        A = b.in_scan_order(0)
        assert above(A).abs().max() == 0.0 and below(A).abs().min() > 0
    back = blocks[1]  # row_rev: in canonical order the causal mask is the other triangle
    assert back.directions == ("row_rev",)
    assert below(back.weights).abs().max() == 0.0 and above(back.weights).abs().min() > 0


def test_bi_attention_of_a_block_is_not_triangular():
    (b, _) = ia.implicit_attention(tiny("bi"), images())
    both = b.weights.abs().sum(1)  # the block's directions together, canonical order
    assert above(both).min() > 0 and below(both).min() > 0


@pytest.mark.parametrize(
    ("traversal", "pooling"),
    [("uni", "last"), ("bi", "bilateral_avg"), ("quad", "middle_cls"), ("quad_shared", "avg")],
)
def test_attention_rows_applied_to_v_give_the_cell_output(traversal, pooling):
    """``A @ v`` (A with its normaliser) reproduces the layer's own cell output h, per
    direction, in scan order and (mapped back) in canonical order."""
    m = tiny(traversal, pooling)
    for b in ia.implicit_attention(m, images()):
        K = len(b.directions)
        v = b.captured["v"].double().unflatten(0, (-1, K))
        h = b.captured["h"].double().unflatten(0, (-1, K))
        for k in range(K):
            close(b.in_scan_order(k) @ v[:, k], h[:, k])
            inv = b.orders[k].argsort()  # canonical token n sits at scan step inv[n]
            close(b.weights[:, k] @ v[:, k][..., inv, :], h[:, k][..., inv, :])


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    """To 1e-5, relative to the values' size (the layer's cell runs in float32)."""
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_exact_influence_is_the_jacobian_frobenius_norm():
    m = tiny("quad_alternating")
    x = images(2)
    maps = influence_per_depth(m, x, depths=[1, 2], probes=None)
    tokens = m.tokens(x).detach()

    def pooled(t: torch.Tensor) -> torch.Tensor:  # one image's tokens -> its pooled vector
        for block in m.blocks:
            t = block(t)
        return m.pooling(m.norm(t), m.layout)

    norms = []
    for b in range(2):
        J = torch.autograd.functional.jacobian(pooled, tokens[b : b + 1])  # (1, D, 1, N, D)
        norms.append(J[0, :, 0].pow(2).sum(dim=(0, 2)).sqrt())
    expected = torch.stack(norms).mean(0)[m.layout.patch_positions].view(*GRID).double()
    torch.testing.assert_close(maps[2], expected, rtol=1e-4, atol=1e-7)
    assert not torch.allclose(maps[1], maps[2])


def test_random_probes_estimate_the_exact_map():
    m, x = tiny("bi"), images(4)
    exact = influence_per_depth(m, x, depths=[2], probes=None)[2]
    probed = influence_per_depth(m, x, depths=[2], probes=64, seed=1)[2]
    assert ((probed - exact).abs() / exact).max() < 0.25


def test_a_one_token_pooling_still_gets_influence():
    """The post-blocks norm with its init weight (ones) fixes a token's norm, so ||pooled||
    has (next to) no gradient for `last`; the Jacobian norm has."""
    m = tiny("uni", "last")
    torch.nn.init.ones_(m.norm.weight)
    x0 = m.tokens(images()).detach().requires_grad_(True)
    y = m.pooling(m.norm(m.blocks[1](m.blocks[0](x0))), m.layout)
    (g,) = torch.autograd.grad(y.norm(dim=-1).sum(), x0)
    assert g.abs().max() < 1e-4 * influence_per_depth(m, images(), probes=None)[2].max()
    assert pooled_positions(m) == [m.layout.last_patch]


def test_pooled_positions_of_every_pooling():
    expect = {"avg": 12, "middle_patch": 1, "middle_cls": 1, "bilateral_avg": 2, "last": 1}
    for name, n in expect.items():
        assert len(pooled_positions(tiny("alternating", name, depth=1))) == n, name
    m = tiny("alternating", "middle_cls", depth=1)
    assert pooled_positions(m) == list(m.layout.extra_index)


def test_map_stats_on_known_maps():
    h, w = 4, 6
    uniform = map_stats(torch.ones(h, w))
    assert uniform.share90 == pytest.approx(22 / 24) and uniform.entropy == pytest.approx(1.0)
    assert uniform.centre_border == pytest.approx(1.0) and uniform.reach == 1.0
    spike = torch.full((h, w), 1e-9)
    spike[0, 0] = 1.0
    s = map_stats(spike)
    assert s.share90 == pytest.approx(1 / 24) and s.entropy < 0.01 and s.reach == 1 / 24
    centre = torch.ones(h, w)
    centre[1:3, 2:4] = 5.0  # the central half of a 4x6 grid: rows 1-2, columns 1-4
    assert map_stats(centre).centre_border > 1.0


# --- the command: bad input, a user's traversal end to end, a run folder's checkpoint ---


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--traversals", "uni", "--images", "0"], "--images"),
        (["--traversals", "uni", "--inputs", "noise"], "valid: val, random"),
        (["--traversals", "uni,nope"], "nope"),
        ([], "give one of"),
        (["table2", "--traversals", "uni"], "give one of"),
        (["--run", "/nonexistent/run"], "checkpoint.pt"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(argv, needle, capsys, tmp_path):
    from ablations.app.cli import main

    code = main(["influence", "--protocol", "smoke", "--results", str(tmp_path), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "influence").exists()  # failed before any work


def test_a_users_traversal_gets_maps_figures_and_numbers(diagonal, tmp_path, capsys):
    from ablations.app.cli import main

    names = f"uni,{diagonal['alternating']}"
    argv = ["influence", "--traversals", names, "--protocol", "smoke", "--inputs", "random",
            "--images", "2", "--probes", "1", "--results", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "influence"
    frame = pd.read_csv(out / "influence.csv")
    assert set(frame["name"]) == {"uni", diagonal["alternating"]}
    assert sorted(frame["depth"].unique()) == [1, 2] and set(frame["stage"]) == {"init"}
    assert frame[["share90", "entropy", "centre_border"]].notna().all().all()
    for stem in ("influence_depth", "attention_pooled", "attention_queries"):
        for ext in ("png", "pdf"):
            assert (out / f"{stem}_init.{ext}").stat().st_size > 1000
    assert diagonal["alternating"] in (out / "influence.md").read_text()


def fake_run(root: Path) -> Path:
    """A finished smoke run folder: result.json (config, record) and a checkpoint whose
    weights differ from the init."""
    from ablations.schema.catalog import load_catalog
    from ablations.schema.config import apply, to_dict
    from ablations.train.runtime import seed_all
    from ablations.train.steps import build_model

    cfg = apply(load_catalog().protocol("smoke"), {"model": {"traversal": "alternating"}}, "t")
    seed_all(cfg.train.seed)
    model = build_model(cfg, 4)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    run = root / "runs" / "alternating-s0"
    run.mkdir(parents=True)
    torch.save({"model": model.state_dict()}, run / "checkpoint.pt")
    rec = {"config": to_dict(cfg), "variant": "alternating", "seed": 0, "state": "COMPLETE",
           "num_classes": 4, "top1": 51.5, "epochs_done": 2,
           "fingerprint": "f00dfeed" * 4}  # fmt: skip
    (run / "result.json").write_text(json.dumps(rec))
    return run


def test_a_run_folder_gets_init_and_trained_maps_with_its_record(tmp_path):
    from ablations.app import influence_command as ic
    from ablations.report.influence_table import influence_section

    run = fake_run(tmp_path)
    out = tmp_path / "influence"
    opts = ic.Options(images=2, inputs="val", probes=1)
    ic.run([ic.run_target(run, {})], opts, out, "vil-ablate influence --run R")
    frame = pd.read_csv(out / "influence.csv")
    init, trained = (frame[frame["stage"] == s].set_index("depth") for s in ("init", "trained"))
    assert list(init.index) == list(trained.index) == [1, 2]
    assert not np.allclose(init["entropy"], trained["entropy"])  # the checkpoint was loaded
    meta = json.loads((out / "provenance.json").read_text())
    rec = meta["records"]["alternating/trained"]
    assert rec["fingerprint"].startswith("f00dfeed") and rec["run_dir"] == str(run)
    assert "smoke" not in meta["inputs"] and "synthetic validation images" in meta["inputs"]
    section = influence_section(tmp_path)  # the experiment report's section, from the files
    assert "## Information flow" in section and "After training" in section
    assert "influence/influence_depth_trained.png" in section and "top-1 51.50%" in section
    assert influence_section(tmp_path / "runs") == ""  # no influence run there: no section


# --- issue 32: comparable attention, labelled rows, chunked memory, eval mode ---


def test_drawn_attention_is_row_shares_per_direction_then_their_mean():
    """Each direction's |A| rows are normalised before the directions are combined: a
    2-direction block's drawn row sums to 1 over the tokens, as a 1-direction block's."""
    from ablations.app import influence_command as ic

    for traversal in ("uni", "bi"):
        m = tiny(traversal)
        r = ic.analyse(m, images(2), traversal, "init", ic.Options(images=2, probes=1))
        (first, _) = ia.implicit_attention(m, images(2))
        for b, grid in r.pooled_attention.items():
            assert grid.sum() == pytest.approx(1.0, rel=1e-6), (traversal, b)
        rows = ia.row_shares(first.weights[..., pooled_positions(m), :])
        assert rows.sum(-1).sub(1).abs().max() < 1e-9


def test_chunks_give_the_same_maps_and_hold_a_bounded_graph():
    """Influence and attention do not depend on --chunk (to float round-off), and the
    graph held at once grows with the chunk, not with the number of images."""
    from ablations.app import influence_command as ic
    from vil.graph_memory import GraphMeter

    size = 4 * 6
    m = vil.create_model("nano", traversal="bi", num_classes=3, img_size=size, patch_size=4)
    x = torch.randn(8, 3, size, size)
    peaks = {}
    for chunk in (None, 1, 3):
        with GraphMeter(m) as meter:
            maps = influence_per_depth(m, x, probes=2, seed=3, chunk=chunk)
        peaks[chunk] = meter.peak
        if chunk is None:
            ref = maps
        for k in ref:
            torch.testing.assert_close(maps[k], ref[k], rtol=1e-5, atol=1e-9)
    assert peaks[1] * 6 < peaks[None]  # the whole batch's graph: ~8 single-image ones
    default = ic.Options().chunk
    with GraphMeter(m) as meter:
        ic.analyse(m, x, "bi", "init", ic.Options(images=8, probes=1))
    assert meter.peak <= peaks[1] * default * 1.25  # the command's default is bounded


def test_influence_puts_the_model_in_eval_mode_and_restores_it():
    m = vil.create_model("nano", traversal="bi", num_classes=3, img_size=(12, 16),
                         patch_size=4, depth=2, drop_path=0.5)  # fmt: skip
    x = images(2)
    ref = influence_per_depth(m.eval(), x, probes=None)
    m.train()
    torch.manual_seed(0)
    got = influence_per_depth(m, x, probes=None)
    assert m.training and all(mod.training for mod in m.modules())
    for k in ref:
        torch.testing.assert_close(got[k], ref[k])
    list(ia.implicit_attention(m, x))
    assert m.training


def test_every_row_names_its_pooling_and_stage():
    from ablations.app import influence_command as ic

    r = ic.analyse(tiny("uni", "last"), images(1), "uni", "init", ic.Options(images=1, probes=1))
    assert "last pooling" in r.label and "init" in r.label
