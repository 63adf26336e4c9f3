"""Opt-in mLSTM cell backend on NX-AI's ``mlstm-kernels`` (Triton on CUDA, PyTorch on CPU).

``cell="kernels"`` runs the model's cell on the package's default kernel for the device
(:data:`DEFAULT_KERNEL`); ``cell="kernels:<name>"`` picks one kernel by its registry name
(``mlstm_kernels.torch.get_available_mlstm_kernels()``). The kernels take the same
(B, NH, S, DH) q, k, v and (B, NH, S) gate pre-activations as :mod:`vil.mlstm` and compute
the same equations (tests/test_kernels.py checks them against our parallel form).
Chunkwise kernels need S to be a multiple of the chunk size: the sequence is padded at the
end, which cannot change earlier outputs (the cell is causal), and the padding is dropped.

Measured with mlstm-kernels 2.0.6 on CPU: the ``*--native_custbw`` kernels' forward
matches, but their gradients of q, k and both gates do not (relative error ~1 against our
float64-checked forms; the ``*--native_autograd`` ones agree to 5e-6). Do not train on them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PREFIX = "kernels"
DEFAULT_KERNEL = {"cuda": "chunkwise--triton_limit_chunk", "cpu": "parallel--native_autograd"}
INSTALL_HINT = "pip install mlstm-kernels (or the project's 'kernels' extra)"


def available() -> list[str]:
    """Kernel names of the installed mlstm-kernels ([] when it is not installed)."""
    try:
        from mlstm_kernels.torch import get_available_mlstm_kernels
    except ImportError:
        return []
    return list(get_available_mlstm_kernels())


def form_names() -> list[str]:
    """The cell forms this backend adds: ``kernels`` and ``kernels:<name>`` per kernel."""
    return [PREFIX] + [f"{PREFIX}:{name}" for name in available()]


def is_kernel_form(form: str) -> bool:
    return form == PREFIX or form.startswith(PREFIX + ":")


def run(q, k, v, igate, fgate, form: str = PREFIX, chunk_size: int = 64) -> torch.Tensor:
    """h (B, NH, S, DH) from the mlstm-kernels kernel that ``form`` names."""
    names = available()
    if not names:
        raise ImportError(f"cell {form!r} needs the mlstm-kernels package: {INSTALL_HINT}")
    name = (
        form.split(":", 1)[1]
        if ":" in form
        else DEFAULT_KERNEL.get(q.device.type, DEFAULT_KERNEL["cpu"])
    )
    if name not in names:
        raise ValueError(f"unknown mlstm-kernels kernel {name!r}; valid: {', '.join(names)}")
    from mlstm_kernels.torch import get_mlstm_kernel

    kernel = get_mlstm_kernel(name)
    S = q.size(-2)
    if not name.startswith("chunkwise"):
        return kernel(q, k, v, igate, fgate)
    pad = -S % chunk_size
    if pad:  # trailing tokens only: earlier outputs cannot see them
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        igate, fgate = (F.pad(t, (0, pad)) for t in (igate, fgate))
    return kernel(q, k, v, igate, fgate, chunk_size=chunk_size)[..., :S, :]
