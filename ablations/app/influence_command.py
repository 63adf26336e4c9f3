"""``vil-ablate influence``: token-influence maps and mLSTM's implicit attention per traversal.

Targets: an experiment's variants (first seed; the trained run's checkpoint too where the
sweep finished it), a list of traversals on a protocol, or one run folder (``--run DIR``).
Every target is analysed at initialisation (the run's seed, so the run's starting weights;
"pretrained NAME" where the config starts from published weights) and, where a checkpoint
exists, after training. Inputs: the first N validation images of
the target's dataset (the existing data builders and eval transforms), or N seeded Gaussian
images. Writes figures, ``influence.csv`` and ``provenance.json`` (ablations/report/).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ablations.app.evaluate import run_config
from ablations.data import build_datasets
from ablations.report.influence import FlowResult
from ablations.report.influence_table import DIR, write_outputs
from ablations.schema.catalog import load_catalog
from ablations.schema.config import (
    ConfigError,
    RunConfig,
    apply,
    parse_set,
    to_dict,
    validate,
)
from ablations.schema.files import read_json, unwritable
from ablations.train import checkpoint as ckpt
from ablations.train.runtime import seed_all
from ablations.train.steps import build_model
from vil import implicit_attention as ia
from vil.graph_memory import GraphMeter
from vil.influence import depths_for, influence_estimates, pooled_positions
from vil.traversals import TRAVERSALS

INPUTS = ("val", "random")


@dataclass
class Target:
    """One model to analyse: a name, its config and (optionally) a trained run folder."""

    name: str
    cfg: RunConfig
    run_dir: Path | None = None


@dataclass
class Options:
    images: int = 16
    inputs: str = "val"  # val | random
    probes: int | str = 2  # random projections per image for the Jacobian norm, or "exact"
    chunk: int = 4  # images per autograd graph (memory: one chunk's graph at a time)
    seed: int = 0  # probes and random inputs
    device: str = "cpu"

    def check(self) -> None:
        if self.images < 1:
            raise ConfigError(f"--images: expected a positive number of images, got {self.images}")
        if self.inputs not in INPUTS:
            raise ConfigError(f"--inputs: unknown {self.inputs!r}; valid: {', '.join(INPUTS)}")
        if self.probes != "exact" and not (isinstance(self.probes, int) and self.probes >= 1):
            raise ConfigError(f"--probes: expected a positive number or 'exact', got "
                              f"{self.probes!r}")  # fmt: skip

    @property
    def vil_probes(self) -> int | None:
        """What ``vil.influence`` takes: the number, or None for the exact Jacobian."""
        return None if self.probes == "exact" else int(self.probes)
        if self.chunk < 1:
            raise ConfigError(f"--chunk: expected a positive number of images, got {self.chunk}")


def load_inputs(cfg: RunConfig, opts: Options) -> tuple[torch.Tensor, int | None, str]:
    """(images, num_classes or None, description): the first N validation images, or noise."""
    size = cfg.data.img_size
    if opts.inputs == "random":
        gen = torch.Generator().manual_seed(opts.seed)
        x = torch.randn(opts.images, 3, size, size, generator=gen)
        return x, None, f"{opts.images} Gaussian random images ({size} px, seed {opts.seed})"

    bundle = build_datasets(cfg.data)
    if opts.images > len(bundle.val):
        raise ConfigError(f"--images: {opts.images} > {len(bundle.val)} validation images "
                          f"of {cfg.data.dataset}")  # fmt: skip
    x = torch.stack([bundle.val[i][0] for i in range(opts.images)])
    return x, bundle.num_classes, f"the first {opts.images} {cfg.data.dataset} validation images"


def build(target: Target, stage: str, num_classes: int | None) -> tuple[torch.nn.Module, dict]:
    """The target's model at init (seeded as the run) or with its checkpoint; + provenance."""

    rec = read_json(target.run_dir / "result.json") if target.run_dir else None
    n = (rec or {}).get("num_classes") or num_classes or target.cfg.data.num_classes
    seed_all(target.cfg.train.seed)  # as the run did: its initial weights
    model = build_model(target.cfg, n)
    if stage == "trained":
        state = ckpt.load(target.run_dir / "checkpoint.pt")
        model.load_state_dict(state["model"])
    prov = {k: v for k, v in (rec or {}).items() if not isinstance(v, dict | list)}
    if target.run_dir:
        prov["run_dir"] = str(target.run_dir)
    prov.setdefault("seed", target.cfg.train.seed)
    return model.eval(), prov


def queries(model) -> dict[str, int]:
    """Label -> canonical index: the four corners, the centre patch, the pooled tokens."""
    L = model.layout
    h, w = L.h, L.w
    spots = {"top-left": 0, "top-right": w - 1, "bottom-left": (h - 1) * w,
             "bottom-right": h * w - 1, "centre": (h // 2) * w + w // 2}  # fmt: skip
    out = {name: L.patch(i) for name, i in spots.items()}
    for pos in pooled_positions(model):
        hit = [n for n, p in out.items() if p == pos]
        if hit:
            out[f"{hit[0]} (pooled)"] = out.pop(hit[0])
        else:
            kind = "CLS" if pos in L.extra_index else f"patch {L.patch_index.index(pos)}"
            out[f"pooled {kind}"] = pos
    return out


def _grid_of(model, row: torch.Tensor):
    L = model.layout
    return row[L.patch_positions].view(L.h, L.w).numpy()


def _cell(model, pos: int) -> tuple[int, int] | None:
    L = model.layout
    if pos in L.extra_index:
        return None
    i = L.patch_index.index(pos)
    return i // L.w, i % L.w


def analyse(model, images: torch.Tensor, name: str, stage: str, opts: Options) -> FlowResult:
    """Influence per depth and the implicit attention of one model, ``opts.chunk`` images at
    a time (the graph of one chunk held at once)."""
    depth = len(model.blocks)
    cuda = images.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(images.device)
    with GraphMeter(model) as meter:  # the bytes the autograd graph held at its largest
        est = influence_estimates(model, images, probes=opts.vil_probes, seed=opts.seed,
                                  chunk=opts.chunk)  # fmt: skip
    memory = {"graph_peak_mib": meter.peak / 2**20}
    if cuda:  # the allocator's peak: graph, activations and gradients together
        memory["cuda_peak_mib"] = torch.cuda.max_memory_allocated(images.device) / 2**20
    qs = queries(model)
    shown = set(depths_for(depth))
    rows = {"pooled": pooled_positions(model), **{q: [p] for q, p in qs.items()}}
    att = ia.attention_summary(model, images, rows, shown, opts.chunk)
    # drawn: each direction's row shares, mean over the block's directions (sums to 1)
    pooled_att = {b: _grid_of(model, att[(b, "pooled")][0].mean(0)) for b in sorted(shown)}
    query_att = {b: {q: _grid_of(model, att[(b, q)][0].mean(0)) for q in qs}
                 for b in sorted({1, depth})}  # fmt: skip
    c = model.cfg
    r = FlowResult(name, c.traversal, c.pooling, stage, (model.layout.h, model.layout.w),
                      {k: e.map.numpy() for k, e in est.items()}, pooled_att, query_att,
                      {q: _cell(model, p) for q, p in qs.items()},
                      {k: None if e.replicates is None else e.replicates.numpy()
                       for k, e in est.items()}, opts.probes)  # fmt: skip
    r.attention_rows = attention_rows(model, att)
    r.memory = memory
    return r


def attention_rows(model, att: dict) -> list[dict[str, Any]]:
    """Per (block, query, direction): the raw magnitude of the query's |A| row (its sum over
    the tokens, its largest entry; before the row normalisation the figures apply) and the
    largest share, mean over images, heads and the query's tokens (attention.csv)."""
    rows = []
    for (block, query), (shares, raw) in sorted(att.items()):
        names = [d.name for d in model.blocks[block - 1].layer.directions]
        for k, direction in enumerate(names):
            rows.append({"block": block, "query": query, "direction": direction,
                         "raw_row_sum": float(raw[k].sum()), "raw_max": float(raw[k].max()),
                         "share_max": float(shares[k].max())})  # fmt: skip
    return rows


def weights_label(cfg: RunConfig, stage: str) -> str:
    """What the weights are, for labels, titles and the CSV: "trained" (a checkpoint), or
    before training "init" or, where the config starts from published weights,
    "pretrained NAME" (the name, or a URL's or file's last part)."""
    if stage == "trained" or cfg.model.pretrained is None:
        return stage
    return f"pretrained {Path(str(cfg.model.pretrained).rstrip('/')).name}"


def exact_cost(model, name: str) -> str:
    """The cost of ``--probes exact``, said before the work: one backward pass per channel of
    the pooled readout, per readout depth and chunk, against the default's 2."""
    width = model.pooling.out_dim(model.cfg.dim)
    default = Options.probes
    return (f"influence: {name}: --probes exact: {width} backward passes per readout depth "
            f"and chunk, {width / default:.0f}x the default {default} probes")  # fmt: skip


def run(targets: list[Target], opts: Options, out_dir: Path, command: str) -> list[Path]:
    """Analyse every target at init (and trained where a checkpoint exists); write outputs."""
    opts.check()
    if not targets:
        raise ConfigError("influence: nothing to analyse (no experiment, traversal or --run)")
    start = time.perf_counter()
    inputs: dict[str, tuple[torch.Tensor, int | None, str]] = {}  # one set per data config
    results = []
    for t in targets:
        key = repr(to_dict(t.cfg.data))  # each target is fed the data it was configured with
        if key not in inputs:
            x, classes, about = load_inputs(t.cfg, opts)
            inputs[key] = (x.to(opts.device), classes, about)
        images, num_classes, _ = inputs[key]
        stages = ["init"]
        if t.run_dir and (t.run_dir / "checkpoint.pt").is_file():
            stages.append("trained")
        for stage in stages:
            model, prov = build(t, stage, num_classes)
            label = weights_label(t.cfg, stage)
            if opts.probes == "exact" and stage == "init":
                print(exact_cost(model, t.name), flush=True)
            r = analyse(model.to(opts.device), images, t.name, label, opts)
            r.provenance = prov if stage == "trained" else {"seed": prov.get("seed")}
            results.append(r)
            peak = ", ".join(f"{k.removesuffix('_mib').replace('_', ' ').replace('cuda', 'CUDA')} "
                             f"{v:.1f} MiB" for k, v in r.memory.items())  # fmt: skip
            print(f"{t.name} ({label}): done at {time.perf_counter() - start:.0f} s ({peak})",
                  flush=True)  # fmt: skip
    meta: dict[str, Any] = {
        "inputs": "; ".join(dict.fromkeys(v[2] for v in inputs.values())),
        "probes": opts.probes, "seed": opts.seed, "device": opts.device,
        "elapsed_s": time.perf_counter() - start, "command": command,
        "load": ", ".join(f"{x:.1f}" for x in os.getloadavg()), "threads": torch.get_num_threads(),
        "chunk": opts.chunk, "memory": {f"{r.name}/{r.stage}": r.memory for r in results},
        "graph_peak_mib": max(r.memory["graph_peak_mib"] for r in results),
        # the process's peak resident memory since it started (Linux: KiB), all of it
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip
    if any("cuda_peak_mib" in r.memory for r in results):
        meta["cuda_peak_mib"] = max(r.memory.get("cuda_peak_mib", 0) for r in results)
    return write_outputs(results, out_dir, meta)


def experiment_targets(sweep) -> list[Target]:
    """An experiment's variants, each at its first seed (``sweep``: ``ablations.sweep.Sweep``)."""
    firsts = {}
    for p in sweep.grid:
        firsts.setdefault(p.variant, p)
    return [_experiment_target(v, sweep.configs[p], sweep.exp_dir / p.run_dir)
            for v, p in firsts.items()]  # fmt: skip


def _experiment_target(name: str, cfg: RunConfig, run_dir: Path) -> Target:
    """A variant analysed on the data its run trained on: the run's recorded config where the
    run folder has one (the command's data settings may differ: said, not silently used)."""
    if not (run_dir / "result.json").is_file():
        return Target(name, cfg, run_dir)
    recorded = run_config(run_dir, {})
    if to_dict(recorded.data) != to_dict(cfg.data):
        print(f"influence: {name}: analysed on the data its run trained on "
              f"({recorded.data.dataset}, {run_dir / 'result.json'}), not this command's "
              f"({cfg.data.dataset})", flush=True)  # fmt: skip
    return Target(name, recorded, run_dir)


def traversal_targets(protocol: RunConfig, names: list[str], overrides: dict) -> list[Target]:
    """Each traversal on ``protocol`` (with ``--set`` overrides), at init only."""

    for n in names:
        TRAVERSALS.get(n)  # an unknown name fails listing the valid ones
    cfg = apply(protocol, overrides, "--set")
    out = []
    for n in names:
        one = apply(cfg, {"model": {"traversal": n}}, "--traversals")
        out.append(Target(n, validate(one, "--traversals", data=False)))
    return out


def run_target(run_dir: Path, overrides: dict) -> Target:
    """The run folder's recorded config (+ ``--set``), at init and with its checkpoint."""

    run_dir = Path(run_dir)
    if not (run_dir / "checkpoint.pt").is_file():
        raise ConfigError(f"--run: {run_dir / 'checkpoint.pt'} does not exist (a finished run "
                          "folder, runs/<variant>-s<seed>, holds one)")  # fmt: skip
    rec = read_json(run_dir / "result.json") or {}
    return Target(str(rec.get("variant") or run_dir.name), run_config(run_dir, overrides), run_dir)


def check_modes(args: Any) -> None:
    """Exactly one of an experiment, ``--traversals`` or ``--run`` (before any work)."""
    if sum(map(bool, (args.experiment, args.traversals, args.run))) != 1:
        raise ConfigError("influence: give one of EXPERIMENT, --traversals A,B or --run DIR")


def _command(args: Any) -> str:
    """The command line, for provenance.json (what made these numbers)."""
    what = args.experiment or (f"--run {args.run}" if args.run else None)
    out = f"vil-ablate influence {what or f'--traversals {args.traversals}'}"
    out += f" --images {args.images} --inputs {args.inputs}"
    for flag in ("protocol", "variants", "seeds", "probes", "chunk"):
        out += f" --{flag} {getattr(args, flag)}" if getattr(args, flag) else ""
    return out


def main(args: Any, sweep: Any = None) -> list[Path]:
    """``vil-ablate influence`` from parsed arguments; ``sweep``: the resolved experiment."""

    overrides = parse_set(args.set)
    if sweep is not None:
        targets, out = experiment_targets(sweep), sweep.exp_dir / DIR
    elif args.run:
        targets, out = [run_target(Path(args.run), overrides)], Path(args.run) / DIR
    else:
        proto = load_catalog(args.experiments).protocol(args.protocol)
        names = [n for n in args.traversals.split(",") if n]
        targets, out = traversal_targets(proto, names, overrides), Path(args.results) / DIR
    opts = Options(args.images, args.inputs, args.probes, chunk=args.chunk,
                   device=args.device or "cpu")  # fmt: skip
    why = unwritable(Path(args.out or out))  # before any work: one line, not a traceback
    if why is not None:
        raise ConfigError(f"influence: {Path(args.out or out)}: {why}; pass --out DIR elsewhere")
    return run(targets, opts, Path(args.out or out), _command(args))
