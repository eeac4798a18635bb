"""The width x prevalence study's statistics against scipy and hand computations, and a construction on
which "CE adds to H(Y)" must fail (CE a function of H(Y) alone) beside one where it must hold."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from transferability.analysis import width_study as ws


def _cells(rng, n_targets=30, sources=("s0", "s1", "s2", "s3"), beyond=True):
    """Binary targets of varied prevalence; CE = H(Y) scaled by a per-pair factor that drives the error
    (beyond=True) or is unrelated noise (beyond=False: CE tracks H(Y) only)."""
    out = []
    h = np.linspace(0.2, 0.69, n_targets)
    for s in sources:
        f = rng.uniform(0.1, 1.0, n_targets)
        err = (0.1 * h + (0.3 * f if beyond else 0.3 * rng.uniform(0.1, 1.0, n_targets))
               + rng.normal(0, 0.005, n_targets))
        for j in range(n_targets):
            out.append(dict(source=s, target=f"t{j}", n_classes=2, ce=f[j] * h[j], nce=-f[j] * h[j],
                            test_error=err[j], test_accuracy=1 - err[j], target_entropy=h[j],
                            majority_error=0.5 - 0.5 * np.sqrt(max(0.0, 1 - h[j] / 0.7))))
    return pd.DataFrame(out)


def test_per_source_r_is_scipys_and_partial_is_the_residual_correlation():
    cells = _cells(np.random.default_rng(0))
    got = ws.per_source(cells, {"nce": 1.0, "target_entropy": -1.0})
    g = cells[cells["source"] == "s1"]
    row = got[(got["source"] == "s1") & (got["estimator"] == "nce")].iloc[0]
    r, p = stats.pearsonr(g["ce"], g["test_error"])   # r(NCE, accuracy) is r(CE, error)
    assert row["r"] == pytest.approx(r, rel=1e-10) and row["p"] == pytest.approx(p, rel=1e-6)
    design = np.c_[np.ones(len(g)), g["target_entropy"]]
    res = lambda v: v - design @ np.linalg.lstsq(design, v, rcond=None)[0]
    want = np.corrcoef(res(g["nce"].to_numpy()), res(g["test_accuracy"].to_numpy()))[0, 1]
    assert row[ws.PARTIAL] == pytest.approx(want, rel=1e-10)
    assert np.isnan(got[got["estimator"] == "target_entropy"][ws.PARTIAL]).all()   # nothing left given itself
    assert got.groupby("estimator")["bh_q"].apply(lambda q: (q >= 0).all()).all()


def test_partial_r_fails_when_ce_only_tracks_entropy_and_holds_when_it_adds():
    rng = np.random.default_rng(1)
    adds = ws.per_source(_cells(rng, beyond=True), {"nce": 1.0})
    only = ws.per_source(_cells(rng, beyond=False), {"nce": 1.0})
    assert (adds[ws.PARTIAL] > 0.8).all()
    assert (only[ws.PARTIAL].abs() < 0.6).all() and abs(only[ws.PARTIAL].median()) < 0.3


def test_summary_is_the_median_over_sources_with_a_bootstrap_over_sources():
    rows = pd.DataFrame(dict(D=8, estimator="nce", r=[0.1, 0.5, 0.2, 0.9, 0.4], bh_q=[0.5, 0.01, 0.2, 0.001, 0.04],
                             partial_r_given_entropy=[0.0, 0.1, np.nan, 0.3, 0.2], partial_bh_q=0.5))
    s = ws.summarise(rows, n_boot=500).set_index("metric")
    assert s.loc[ws.R, "median"] == 0.4 and s.loc[ws.R, "n_sources"] == 5 and s.loc[ws.R, "n_significant"] == 3
    assert s.loc[ws.R, "ci_low"] <= 0.4 <= s.loc[ws.R, "ci_high"] and 0.1 <= s.loc[ws.R, "ci_low"]
    assert s.loc[ws.PARTIAL, "median"] == pytest.approx(0.15) and s.loc[ws.PARTIAL, "n_sources"] == 4
    md = ws.table_markdown(s.reset_index(), ws.R, ["nce"])
    assert "| nce | 0.40 [" in md and "(3/5)" in md


def test_binary_cells_keep_transfer_pairs_to_binary_targets():
    rows = pd.DataFrame(dict(source=["a", "a", "a", "random", "a"], target=["a", "b", "k", "b", "c"],
                             n_classes=[2, 2, 10, 2, 2]))
    assert list(ws.binary_cells(rows)["target"]) == ["b", "c"]


def test_quantile_groups_name_the_nested_cuts():
    assert ws.quantile_groups(["even", "wide@q10", "wide@q90", "tall@q50"]) == {"wide": ["wide@q10", "wide@q90"]}


def test_reading_says_whether_the_interval_excludes_zero():
    s = pd.DataFrame([dict(D=2, estimator="nce", metric=ws.R, median=0.5, ci_low=0.3, ci_high=0.6),
                      dict(D=2, estimator="nce", metric=ws.PARTIAL, median=0.1, ci_low=-0.1, ci_high=0.2),
                      dict(D=2, estimator="logme", metric=ws.PARTIAL, median=0.4, ci_low=0.2, ci_high=0.5)])
    (line,) = ws.reading(s)
    assert "includes 0" in line and "logme 0.40" in line
    s.loc[1, "ci_low"] = 0.05
    assert "excludes 0" in ws.reading(s)[0]
