"""build_report / write_index on hand-made sweeps: numbers, CIs, files, failures, partials."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ablations.report import build_report, write_index
from ablations.schema.record import RunRecord

SEEDS = [0, 1, 2]
PARAMS = {"uni": 5.889e6, "bi": 6.286e6, "alternating": 5.889e6, "quad": 7.079e6}
PARAMS |= {"snake_alternating": 5.889e6}
FLOPS = {"uni": 1.1e9, "bi": 2.0e9, "alternating": 1.1e9, "quad": 3.9e9, "snake_alternating": 1.1e9}
# (variant, seed, state, top1, fail_reason); quad seed 2 is absent from runs.csv on purpose,
# and snake_alternating is not in experiment.json's variants: neither may be dropped.
ROWS = [
    ("uni", 0, "COMPLETE", 60.0, ""),
    ("uni", 1, "COMPLETE", 61.0, ""),
    ("uni", 2, "COMPLETE", 62.5, ""),
    ("bi", 0, "COMPLETE", 70.1, ""),
    ("bi", 1, "COMPLETE", 70.9, ""),
    ("bi", 2, "FAIL", math.nan, "CUDA out of memory at epoch 3"),
    ("alternating", 0, "COMPLETE", 71.0, ""),
    ("alternating", 1, "COMPLETE", 70.2, ""),
    ("alternating", 2, "COMPLETE", 71.6, ""),
    ("quad", 0, "FAIL", math.nan, "loss is NaN | diverged"),
    ("quad", 1, "RUNNING", math.nan, ""),
    ("snake_alternating", 0, "COMPLETE", 69.0, ""),
]


def _run_row(variant: str, seed: int, state: str, top1: float, reason: str, axis: str) -> dict:
    done = state == "COMPLETE"
    return {
        "experiment": "table2" if axis == "traversal" else "table3",
        "protocol": "demo",
        "variant": variant,
        "traversal": variant if axis == "traversal" else "alternating",
        "pooling": variant if axis == "pooling" else "bilateral_avg",
        "seed": seed,
        "state": state,
        "params": PARAMS.get(variant, 5.9e6),
        "flops": FLOPS.get(variant, 1.1e9),
        "top1": top1,
        "top5": top1 + 20 + seed if done else math.nan,
        "train_time_s": 100.0 + 10 * seed if done else math.nan,
        "img_per_s": 500.0 - 20 * seed - (200 if variant == "quad" else 0) if done else math.nan,
        "peak_mem_mb": 900.0,
        "epochs_done": 4 if done else 1,
        "fail_reason": reason,
        "run_dir": f"runs/{variant}-s{seed}",
    }


def _metrics(run_dir: Path, top1: float) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        {"epoch": e, "step": 10 * e, "lr": 1e-3, "train_loss": 4.0 - 0.5 * e, "val_loss": "",
         "val_top1": "" if e % 2 == 0 else top1 * e / 4, "val_top5": "",
         "epoch_time_s": 1.0, "img_per_s": 500.0}
        for e in range(1, 5)
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(run_dir / "metrics.csv", index=False)


def make_experiment(root: Path, axis: str, variants: list[str], rows: list[tuple]) -> Path:
    """Write experiment.json, runs.csv and metrics.csv files the way the sweep harness does."""
    name = "table2" if axis == "traversal" else "table3"
    exp_dir = root / name
    exp_dir.mkdir(parents=True)
    meta = {
        "experiment": name,
        "protocol": "demo",
        "axis": axis,
        "reference": "alternating" if axis == "traversal" else "bilateral_avg",
        "variants": variants,
        "seeds": SEEDS,
    }
    (exp_dir / "experiment.json").write_text(json.dumps(meta))
    runs = [_run_row(*r, axis=axis) for r in rows]
    pd.DataFrame(runs).to_csv(exp_dir / "runs.csv", index=False)
    for r in runs:
        if r["state"] in ("COMPLETE", "FAIL"):
            _metrics(exp_dir / r["run_dir"], r["top1"] if r["state"] == "COMPLETE" else 30.0)
        if r["state"] != "MISSING":
            _record(exp_dir, r)
    return exp_dir


def _record(exp_dir: Path, row: dict) -> None:
    """The run's result.json, as the trial writes it (the report's source of settings)."""
    config = {
        "model": {"size": "tiny", "dim": 192, "depth": 4, "patch_size": 4},
        "data": {"dataset": "synthetic", "class_list": "first100", "img_size": 32},
        "train": {"epochs": 4, "batch_size": 32, "lr": 1e-3},
    }
    rec = RunRecord.from_dict({k: v for k, v in row.items() if not _nan(v)})
    rec.update(dict(config=config, dataset="synthetic", class_list="first100", img_size=32,
                    model_size="tiny", dim=192, depth=4, epochs=4, batch_size=32, base_lr=1e-3,
                    device="cpu", versions={"torch": "2.x", "python": "3.11"}, git_rev="abc1234",
                    deviations=["4 epochs instead of 400",
                                "synthetic data instead of ImageNet-100"]))  # fmt: skip
    rec.write(exp_dir / row["run_dir"])


def _nan(v: object) -> bool:
    return isinstance(v, float) and math.isnan(v)


@pytest.fixture(scope="module")
def table2(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    exp_dir = make_experiment(root, "traversal", ["uni", "bi", "alternating", "quad"], ROWS)
    build_report(exp_dir)
    return exp_dir


def _top1(variant: str) -> list[float]:
    return [r[3] for r in ROWS if r[0] == variant and r[2] == "COMPLETE"]


def test_main_csv_equals_aggregates_of_rows(table2):
    main = pd.read_csv(table2 / "table_main.csv").set_index("variant")
    assert list(main.index) == ["uni", "bi", "alternating", "quad", "snake_alternating"]
    for variant in ("uni", "bi", "alternating"):
        vals = _top1(variant)
        assert main.loc[variant, "top1_mean"] == pytest.approx(np.mean(vals))
        assert main.loc[variant, "top1_std"] == pytest.approx(np.std(vals, ddof=1))
        assert main.loc[variant, "n_complete"] == len(vals)
        top5 = [v + 20 + s for (n, s, st, v, _) in ROWS if n == variant and st == "COMPLETE"]
        assert main.loc[variant, "top5_mean"] == pytest.approx(np.mean(top5))
    assert main.loc["bi", "params_m"] == pytest.approx(6.286)
    assert main.loc["bi", "gflops"] == pytest.approx(2.0)
    assert main.loc["uni", "train_time_s"] == pytest.approx(110.0)
    assert main.loc["bi", "directions_per_block"] == 2
    assert main.loc["quad", "n_complete"] == 0 and np.isnan(main.loc["quad", "top1_mean"])
    assert bool(main.loc["alternating", "reference"])


def test_main_markdown_shows_the_same_numbers(table2):
    md = (table2 / "table_main.md").read_text()
    lines = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    for variant in ("uni", "bi"):
        vals = _top1(variant)
        assert f"{np.mean(vals):.2f} ± {np.std(vals, ddof=1):.2f}" in lines[variant]
    alt = _top1("alternating")
    # The highest mean, but its interval against bi (2 seeds) and snake_alternating (one
    # seed, no interval) does not exclude 0: no bold, and the footnote says so.
    assert f"{np.mean(alt):.2f} ± {np.std(alt, ddof=1):.2f}" in lines["alternating†"]
    assert "**" not in "".join(lines.values()) and "No bold:" in md
    assert "2/3" in lines["bi"] and "0/3" in lines["quad"]
    assert "—" in lines["quad"] and "6.286" in lines["bi"]
    assert "69.00" in lines["snake_alternating"]  # one seed: mean without std
    assert "no complete run" in md and "reference variant" in md
    tex = (table2 / "table_main.tex").read_text()
    assert r"\toprule" in tex and r"\textbf{" not in tex and r"snake\_alternating" in tex


def test_differences_match_scipy_paired_and_welch(table2):
    """uni shares every complete seed with the reference: paired; bi lacks seed 2: Welch."""
    diff = pd.read_csv(table2 / "table_diff.csv").set_index("variant")
    tests = {"uni": stats.ttest_rel(_top1("uni"), _top1("alternating")),
             "bi": stats.ttest_ind(_top1("bi"), _top1("alternating"), equal_var=False)}  # fmt: skip
    for variant, ref in tests.items():
        ci = ref.confidence_interval(0.95)
        assert diff.loc[variant, "ci_low"] == pytest.approx(ci.low)
        assert diff.loc[variant, "ci_high"] == pytest.approx(ci.high)
        assert diff.loc[variant, "df"] == pytest.approx(ref.df)
    assert diff.loc["uni", "method"] == "paired" and diff.loc["bi", "method"] == "welch"
    half = (ci.high - ci.low) / 2  # bi: what its seeds resolve is the CI's half-width here
    assert diff.loc["bi", "min_resolvable"] > 0 and np.isfinite(half)
    assert diff.loc["bi", "diff_top1"] == pytest.approx(70.5 - np.mean(_top1("alternating")))
    snake = diff.loc["snake_alternating"]
    assert np.isnan(snake["ci_low"]) and "2 complete seeds" in snake["note"]
    assert snake["diff_top1"] == pytest.approx(69.0 - np.mean(_top1("alternating")))


def test_status_counts_and_failures(table2):
    status = pd.read_csv(table2 / "table_status.csv").set_index("variant")
    quad = status.loc["quad"]
    assert (quad["complete"], quad["fail"], quad["running"], quad["missing"]) == (0, 1, 1, 1)
    assert status.loc["bi", "fail"] == 1 and status.loc["uni", "complete"] == 3
    assert status.loc["snake_alternating", "total"] == 1
    page = (table2 / "report.md").read_text()
    assert "CUDA out of memory at epoch 3" in page and r"loss is NaN \| diverged" in page
    fails = pd.read_csv(table2 / "table_failures.csv")
    from ablations.report.load import MISSING_REASON  # a MISSING point is listed too (#35)

    assert set(fails["fail_reason"]) == {"CUDA out of memory at epoch 3", "loss is NaN | diverged",
                                         MISSING_REASON}  # fmt: skip
    assert fails[fails["state"] == "MISSING"]["variant"].tolist() == ["quad"]


def test_every_figure_is_written_and_linked(table2):
    page = (table2 / "report.md").read_text()
    stems = ["top1", "top1_gflops", "top1_throughput", "learning_curves", "traversal_paths"]
    for stem in stems:
        for ext in ("png", "pdf"):
            path = table2 / "figures" / f"{stem}.{ext}"
            assert path.stat().st_size > 1000, path
            assert f"figures/{stem}.{ext}" in page
    assert "4 epochs instead of 400" in page and "synthetic" in page and "first100" in page


def test_findings_in_page_and_csv(table2):
    found = pd.read_csv(table2 / "findings.csv")
    verdicts = dict(zip(found["claim"], found["claim_verdict"], strict=False))
    # quad has no complete run and snake_alternating one seed: worst-ness cannot be decided.
    assert verdicts["uni-directional is clearly worst"].startswith("inconclusive")
    uni = found[found["claim"] == "uni-directional is clearly worst"].set_index("check")
    # bi has 2 complete seeds: its interval is shown but no claim is decided on it
    assert uni.loc["bi − uni", "verdict"] == "inconclusive (n < 3)"
    assert "95% CI" in uni.loc["bi − uni", "evidence"]
    assert uni.loc["quad − uni", "evidence"] == "no complete run of quad"
    assert "no CI" in uni.loc["snake_alternating − uni", "evidence"]
    assert verdicts["sharing the bi-directional parameters loses accuracy"] == "not tested"
    assert "not in the sweep: bi_shared" in (table2 / "report.md").read_text()


def test_pooling_report_and_index(tmp_path):
    rows = [(p, s, "COMPLETE", 70.0 + 0.1 * s + 0.05 * i, "") for s in SEEDS
            for i, p in enumerate(["avg", "bilateral_avg", "bilateral_concat"])]  # fmt: skip
    variants = ["avg", "bilateral_avg", "bilateral_concat", "middle_cls"]
    exp_dir = make_experiment(tmp_path, "pooling", variants, rows)
    page = build_report(exp_dir).read_text()
    main = pd.read_csv(exp_dir / "table_main.csv").set_index("variant")
    assert main.loc["bilateral_concat", "head_input"] == 384
    assert main.loc["avg", "head_input"] == 192
    assert main.loc["middle_cls", "n_complete"] == 0
    assert "ImageNet-1K at 192 px" in page and "bilateral_avg†" in page
    assert "all pooling variants land within about 0.6 points" in page
    index = write_index(tmp_path).read_text()
    assert "[table3](table3/)" in index and "table3/report.md" in index and "9/12" in index


def test_tradeoff_labels_of_coinciding_points_do_not_overlap():
    """uni, alternating and quad_alternating share GFLOPs; close top-1 must not stack labels."""
    from ablations.report.plots import label_offsets

    xs = np.array([1.1, 1.1, 1.1, 2.0])
    ys = np.array([70.0, 70.1, 60.0, 70.0])
    off = label_offsets(xs, ys)
    assert off[0] != off[1]  # same x, top-1 0.1 apart: separate rows of labels
    assert off[2] == 0 and off[3] == 0  # far apart in y, or in x: no shift needed
