"""The opt-in mlstm-kernels cell backend against our parallel form (vil/kernels.py)."""

from __future__ import annotations

import pytest
import torch
from test_mlstm import make_inputs, rel_err

import vil
from vil import kernels, mlstm

needs_kernels = pytest.mark.skipif(
    not kernels.available(), reason=f"mlstm-kernels not installed: {kernels.INSTALL_HINT}"
)


@needs_kernels
@pytest.mark.parametrize("S", [7, 64, 65])  # 7 and 65: chunkwise kernels need padding
@pytest.mark.parametrize(
    "form", ["kernels", "kernels:parallel--native_autograd", "kernels:chunkwise--native_autograd"]
)
def test_kernel_forms_match_our_parallel_form(form, S):
    inputs = make_inputs(2, 3, S, 16, spiky=False, seed=S)
    ours_in = [t.clone().requires_grad_() for t in inputs]
    theirs_in = [t.clone().requires_grad_() for t in inputs]
    ours = mlstm.parallel(*ours_in)
    theirs = mlstm.mlstm(*theirs_in, form=form, chunk_size=16)
    assert theirs.shape == ours.shape
    assert rel_err(theirs, ours.double()) < 1e-4
    w = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1))
    (ours * w).sum().backward()
    (theirs * w).sum().backward()
    for name, a, b in zip("q k v igate fgate".split(), theirs_in, ours_in, strict=True):
        assert rel_err(a.grad, b.grad.double()) < 1e-3, name


@needs_kernels
def test_model_runs_its_cell_on_the_kernels():
    torch.manual_seed(0)
    model = vil.create_model("nano", "bi", "middle_cls", img_size=16, patch_size=4, num_classes=5)
    x = torch.randn(2, 3, 16, 16)
    ref = model(x)
    for block in model.blocks:
        block.layer.cell = "kernels:chunkwise--native_autograd"  # 17 tokens: padded chunks
    out = model(x)
    out.sum().backward()
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-4)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@needs_kernels
def test_unknown_kernel_lists_valid_names():
    q, k, v, i, f = make_inputs(1, 1, 8, 4, False, seed=0)
    with pytest.raises(ValueError, match="valid: .*parallel--native_custbw"):
        mlstm.mlstm(q, k, v, i, f, form="kernels:fastest")


def test_kernel_forms_are_valid_cell_names_only_when_installed():
    names = mlstm.form_names()
    assert {"auto", "parallel", "chunkwise", "recurrent", "kernels"} <= set(names)
    assert any(n.startswith("kernels:") for n in names) == bool(kernels.available())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: Triton kernels")
@needs_kernels
def test_triton_kernel_matches_our_parallel_form_in_bf16():
    q, k, v, i, f = (t.cuda() for t in make_inputs(2, 4, 64, 64, spiky=False, seed=0))
    ours = mlstm.parallel(q, k, v, i, f)
    theirs = mlstm.mlstm(q.bfloat16(), k.bfloat16(), v.bfloat16(), i, f, form="kernels")
    assert rel_err(theirs.float(), ours.double()) < 3e-2  # bf16 inputs: ~8 bits of mantissa
