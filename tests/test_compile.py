"""torch.compile works for the multi-direction variant the paper could not compile (quad)."""

from __future__ import annotations

import pytest
import torch

from vil import create_model


@pytest.mark.slow
# every traversal compiled: benchmarks/bench_model.py --compile
@pytest.mark.parametrize("traversal", ["quad"])
def test_compiled_model_matches_eager(traversal):
    torch._dynamo.reset()
    model = create_model("nano", traversal, "middle_cls", img_size=16, patch_size=4, num_classes=5)
    compiled = torch.compile(model, fullgraph=True)  # fullgraph: no graph breaks allowed
    x = torch.randn(2, 3, 16, 16)
    eager = model(x)
    out = compiled(x)
    out.sum().backward()
    assert torch.allclose(out, eager, atol=1e-5, rtol=1e-4)
    assert all(p.grad is not None for p in model.parameters())
