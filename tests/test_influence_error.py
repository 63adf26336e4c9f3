"""The probe error of the influence maps is stated and true (issue 32 item 2).

At the command's default probes and images, the standard error ``vil.influence`` states
(from the probes' own spread) is checked against the exact Jacobian map on nano models at
(near) init: +-1 SE and +-2 SE must cover the exact value at about their stated rates, so a
spread reported too small (or zero) fails, and so does one too large.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

import vil
from ablations.app import influence_command as ic
from ablations.report.influence_table import stats_rows
from vil.influence import influence_estimates, map_stats

DEFAULT = ic.Options()
MODELS = [("bi", "bilateral_avg"), ("uni", "last"), ("quad", "middle_cls"), ("alternating", "avg")]


def nano(traversal: str, pooling: str, seed: int) -> vil.VisionLSTM:
    """A nano ViL (3x4 patches, 2 blocks) near its init: weights nudged so the gates differ."""
    torch.manual_seed(seed)
    m = vil.create_model("nano", traversal=traversal, pooling=pooling, num_classes=3,
                         img_size=(12, 16), patch_size=4, depth=2)  # fmt: skip
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def test_the_default_probes_stated_error_covers_the_exact_map():
    assert DEFAULT.probes == 2 and DEFAULT.images == 16  # the setting checked here
    z, stat_z = [], []
    for i, (traversal, pooling) in enumerate(MODELS):
        m = nano(traversal, pooling, i)
        x = torch.randn(DEFAULT.images, 3, 12, 16)
        exact = influence_estimates(m, x, probes=None)
        for seed in range(2):
            est = influence_estimates(m, x, probes=DEFAULT.probes, seed=seed)
            for k, e in est.items():
                assert e.replicates is not None
                z.append(((e.map - exact[k].map) / e.se).flatten())
                reps = [map_stats(r) for r in e.replicates]
                got, truth = map_stats(e.map), map_stats(exact[k].map)
                se = np.std([r.entropy for r in reps])
                stat_z.append((got.entropy - truth.entropy) / se)
    z = torch.cat(z).abs()
    within1, within2 = float((z <= 1).double().mean()), float((z <= 2).double().mean())
    # stated in docs/influence.md: +-2 SE covers about 90% of patches (nominal 95%; measured
    # here 94%), +-1 SE about 60% (nominal 68%; here 58%); a spread overstated by sqrt(2)
    # (the probe count dropped from the law: 78% and 99%) fails as a too-small one does
    assert 0.82 <= within2 <= 0.98, within2
    assert 0.45 <= within1 <= 0.72, within1
    assert float(np.mean(np.abs(stat_z) <= 2)) >= 0.75  # the summary numbers' spread too


def test_exact_has_no_error_and_one_probe_an_unknown_one():
    m, x = nano("bi", "bilateral_avg", 0), torch.randn(4, 3, 12, 16)
    (e,) = influence_estimates(m, x, depths=[2], probes=None).values()
    assert e.exact and e.replicates is None and (e.se == 0).all()
    (one,) = influence_estimates(m, x, depths=[2], probes=1).values()
    assert one.replicates is None and one.se.isnan().all()  # not claimed to be 0


def test_the_csv_states_the_error_and_exact_states_none():
    m, x = nano("uni", "last", 1), torch.randn(4, 3, 12, 16)
    frames = {}
    for probes in (2, "exact"):
        r = ic.analyse(m, x, "uni", "init", ic.Options(images=4, probes=probes))
        frames[probes] = pd.DataFrame(stats_rows([r]))
    two, exact = frames[2], frames["exact"]
    cols = ["se_rel_median", "se_rel_max", "share90_se", "entropy_se", "centre_border_se"]
    assert (two[cols] > 0).all().all() and (exact[cols] == 0).all().all()
    assert (two["se_rel_median"] <= two["se_rel_max"]).all()
    assert list(exact["probes"]) == ["exact"] * len(exact)


def test_the_section_says_which_summary_numbers_the_probe_error_leaves_stable():
    from ablations.report.influence_table import _probe_lines

    row = {"se_rel_median": 0.05, "se_rel_max": 0.2, "share90_se": 0.01, "entropy_se": 0.001,
           "centre_border_se": 0.002, "reach_se": 0.0}  # fmt: skip
    text = "\n".join(_probe_lines(pd.DataFrame([row, {**row, "share90_se": 0.004}])))
    assert "5.0% median, 20.0% at most" in text
    assert "Left stable by it (2 SE < 0.005 in every row): entropy, centre_border." in text
    assert "Moved by it (largest 2 SE over the rows): share90 +-0.020." in text
    exact = {k: 0.0 for k in row}
    assert "none (exact Jacobian" in _probe_lines(pd.DataFrame([exact]))[0]
    unknown = {k: float("nan") for k in row}
    assert "not measured" in _probe_lines(pd.DataFrame([unknown]))[0]


def test_probes_exact_is_said_with_its_cost(capsys, tmp_path):
    from ablations.app.cli import main
    from ablations.schema.catalog import load_catalog

    (target,) = ic.traversal_targets(load_catalog().protocol("smoke"), ["uni"], {})
    model, _ = ic.build(target, "init", 4)
    width = model.pooling.out_dim(model.cfg.dim)
    opts = ic.Options(images=2, inputs="random", probes="exact")
    out = ic.run([target], opts, tmp_path, "test")
    assert f"{width} backward passes per readout depth and chunk" in capsys.readouterr().out
    frame = pd.read_csv(next(p for p in out if p.name == "influence.csv"))
    assert frame["se_rel_max"].eq(0).all() and frame["probes"].eq("exact").all()
    assert main(["influence", "--traversals", "uni", "--probes", "lots"]) == 2
    assert "'exact'" in capsys.readouterr().err
