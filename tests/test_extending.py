"""docs/own-parts.md's "Adding a traversal, a pooling or a dataset": each example, run as
printed (in a fresh process, so the registries of other tests stay as they are), makes its
name work in the model, the run config and the data pipeline."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHECKS = """
import json, torch, vil
from ablations.data import KINDS, build_datasets
from ablations.schema.config import RunConfig, apply
out = {}
for name in ("diagonal_alternating", "bi_diagonal"):
    m = vil.create_model("nano", name, "max", img_size=16, patch_size=4, num_classes=3)
    out[name] = list(m(torch.randn(2, 3, 16, 16)).shape)
cfg = apply(RunConfig(), {"model": {"traversal": "bi_diagonal", "pooling": "max"},
                          "data": {"dataset": "stripes", "img_size": 16}}, "--set")
bundle = build_datasets(cfg.data)
image, label = bundle.train[0]
out["stripes"] = [bundle.num_classes, len(bundle.train), len(bundle.val), list(image.shape)]
print(json.dumps(out))
"""


def _examples() -> list[str]:
    text = (REPO / "docs" / "own-parts.md").read_text()
    section = text.split("## Adding a traversal, a pooling or a dataset", 1)[1].split("\n## ")[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_docs_examples_register_names_that_work_everywhere():
    blocks = _examples()
    assert len(blocks) == 3  # a traversal, a pooling, a dataset
    code = "\n".join([*blocks, CHECKS])
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["diagonal_alternating"] == [2, 3] and out["bi_diagonal"] == [2, 3]
    assert out["stripes"] == [2, 64, 64, [3, 16, 16]]
