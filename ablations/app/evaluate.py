"""``vil-ablate eval``: top-1 / top-5 of a model on a dataset's validation split.

Two sources of weights: a run folder of ours (``--run DIR``: its config.yaml and
checkpoint.pt), or any config whose ``model.pretrained`` names published NX-AI weights, a URL
or a file (converted by ``vil.convert``). The data come from the same protocol/``--set``
layering as a sweep; nothing is trained and nothing is written unless ``--out`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ablations.data import build_datasets
from ablations.schema.config import ConfigError, RunConfig, apply, from_dict, validate
from ablations.schema.files import read_json, write_json
from ablations.train import checkpoint as ckpt
from ablations.train.runtime import resolve_runtime
from ablations.train.steps import build_model, evaluate


def run_config(run_dir: Path, overrides: dict[str, Any]) -> RunConfig:
    """The config a run recorded (result.json), with ``--set`` overrides (e.g. data.root)."""

    rec = read_json(Path(run_dir) / "result.json")
    if not rec or not rec.get("config"):
        raise ConfigError(f"{run_dir}: no result.json with a config (is it a run folder?)")
    return apply(from_dict(rec["config"], f"{run_dir}/result.json"), overrides, "--set")


def evaluate_config(cfg: RunConfig, checkpoint: Path | None = None) -> dict[str, Any]:
    """Build data and model, load ``checkpoint`` (ours) if given, evaluate on val."""

    validate(cfg, "eval")
    rt = resolve_runtime(cfg.train)
    bundle = build_datasets(cfg.data)
    model = build_model(cfg, bundle.num_classes)
    if checkpoint is not None:
        state = ckpt.load(checkpoint)
        if state is None:
            raise ConfigError(f"{checkpoint}: no such checkpoint")
        model.load_state_dict(state["model"])
    model.to(rt.device)
    batch = min(cfg.train.batch_size, 256)  # eval only: no need for the training batch
    val = DataLoader(bundle.val, batch_size=batch, num_workers=cfg.data.num_workers)
    with torch.no_grad():
        metrics = evaluate(model, val, rt)
    return {
        "top1": metrics["val_top1"], "top5": metrics["val_top5"],
        "val_loss": metrics["val_loss"], "val_images": len(bundle.val),
        "num_classes": bundle.num_classes, "dataset": cfg.data.dataset,
        "weights": str(checkpoint) if checkpoint else cfg.model.pretrained,
    }  # fmt: skip


def main(cfg: RunConfig, run_dir: Path | None, out: Path | None) -> dict[str, Any]:
    ckpt_path = Path(run_dir) / "checkpoint.pt" if run_dir else None
    if ckpt_path is None and not cfg.model.pretrained:
        raise ConfigError("eval: give --run DIR or --set model.pretrained=NAME|URL|FILE")
    result = evaluate_config(cfg, ckpt_path)
    if out is not None:
        write_json(out, result)
    return result
