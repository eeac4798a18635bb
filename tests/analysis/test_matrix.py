"""The pure analysis functions against scipy and hand-computed values."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from transferability.analysis.design import ce_correlations
from transferability.analysis.matrix import (
    correlate,
    correlations,
    fit_line,
    hardness_table,
    matrix,
    mean_over_seeds,
    transfers,
)
from transferability.analysis.ranking import MEAN, METRICS, best_estimator, estimator_comparison, rank_agreement
from transferability.analysis.summary import HELD, NOT_HELD, design_claims, table1_claims, theorem1_claims
from transferability.analysis.tables import (
    AVERAGE,
    DEDICATED_NET,
    DEDICATED_SVM,
    THEOREM1_TOL,
    fraction_curves,
    table1,
    table1_layout,
    table1_markdown,
    table1_pattern,
    theorem1_check,
)
from transferability.config import group_config


def cells(source, targets, ce, err, **extra):
    """Rows of one source: dedicated cell when source is among targets."""
    df = pd.DataFrame({"source": source, "target": targets, "ce": ce, "test_error": err, **extra})
    df["test_accuracy"] = 1 - df["test_error"]
    return df


def test_correlate_matches_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=20)
    y = x + rng.normal(size=20)
    y[3] = np.nan   # dropped pairwise
    c = correlate(x, y)
    ok = np.isfinite(y)
    assert c["n"] == 19
    assert c["pearson_r"] == pytest.approx(stats.pearsonr(x[ok], y[ok])[0])
    assert c["pearson_p"] == pytest.approx(stats.pearsonr(x[ok], y[ok])[1])
    assert c["spearman_rho"] == pytest.approx(stats.spearmanr(x[ok], y[ok])[0])
    assert c["kendall_tau"] == pytest.approx(stats.kendalltau(x[ok], y[ok])[0])
    assert c["kendall_p"] == pytest.approx(stats.kendalltau(x[ok], y[ok])[1])


@pytest.mark.parametrize("x, y", [([1, 2], [3, 4]), ([1, 1, 1, 1], [1, 2, 3, 4]), ([1, 2, 3], [5, 5, 5]), ([], [])])
def test_correlate_undefined_is_nan_without_warnings(x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = correlate(x, y)
    assert c["n"] == len(x)
    assert all(np.isnan(c[k]) for k in c if k != "n")


def test_correlations_exclude_dedicated_cell_and_add_pooled():
    a = cells("a", ["a", "b", "c", "d"], [0.0, 0.1, 0.5, 0.3], [0.01, 0.2, 0.4, 0.3])
    b = cells("b", ["a", "b", "c", "d"], [0.2, 0.0, 0.6, 0.1], [0.3, 0.02, 0.1, 0.2])
    corr = correlations(pd.concat([a, b])).set_index("scope")
    assert corr.at["a", "n"] == 3
    assert corr.at["a", "pearson_r"] == pytest.approx(stats.pearsonr([0.1, 0.5, 0.3], [0.2, 0.4, 0.3])[0])
    assert corr.at["pooled", "n"] == 6
    assert corr.at["pooled", "pearson_r"] == pytest.approx(
        stats.pearsonr([0.1, 0.5, 0.3, 0.2, 0.6, 0.1], [0.2, 0.4, 0.3, 0.3, 0.1, 0.2])[0])


def test_mean_over_seeds_and_matrix():
    r0 = cells("a", ["a", "b"], [0.0, 0.4], [0.1, 0.3]).assign(seed=0, train_fraction=1.0)
    r1 = cells("a", ["a", "b"], [0.0, 0.4], [0.2, 0.5]).assign(seed=1, train_fraction=1.0)
    rb = cells("b", ["b"], [0.0], [0.05]).assign(seed=0, train_fraction=1.0)
    rows = mean_over_seeds(pd.concat([r0, r1, rb]))
    got = rows.set_index(["source", "target"])
    assert got.at[("a", "b"), "test_error"] == pytest.approx(0.4)
    assert got.at[("a", "b"), "n_seeds"] == 2
    assert got.at[("a", "b"), "test_accuracy_std"] == pytest.approx(np.std([0.7, 0.5], ddof=1))
    assert bool(got.at[("a", "a"), "dedicated"]) and not bool(got.at[("a", "b"), "dedicated"])
    m = matrix(rows)
    assert m.at["a", "b"] == pytest.approx(0.4) and np.isnan(m.at["b", "a"])
    assert len(transfers(rows)) == 1


def test_fit_line_by_hand():
    x, y = [0, 1, 2, 3], [1, 3, 2, 5]
    # Sxx = 5, Sxy = 5.5 -> slope 1.1, intercept 1.1; RSS = 2.7, s^2 = 1.35
    f = fit_line(x, y, n_grid=3)
    assert f.slope == pytest.approx(1.1) and f.intercept == pytest.approx(1.1)
    np.testing.assert_allclose(f.x, [0, 1.5, 3])
    half_mid = stats.t.ppf(0.975, 2) * np.sqrt(1.35 / 4)   # at xbar: t * s / sqrt(n)
    assert f.upper[1] - f.y[1] == pytest.approx(half_mid)
    assert half_mid == pytest.approx(2.4996, abs=1e-3)
    # at x0 = 0 the band is t * SE(intercept), which linregress reports
    lr = stats.linregress(x, y)
    assert f.y[0] - f.lower[0] == pytest.approx(stats.t.ppf(0.975, 2) * lr.intercept_stderr)
    assert fit_line([1, 2], [3, 4]) is None and fit_line([2, 2, 2], [1, 2, 3]) is None


def test_hardness_table_uses_dedicated_cells():
    rows = pd.concat([cells("a", ["a", "b"], [0.0, 0.3], [0.1, 0.4]), cells("b", ["b", "a"], [0.0, 0.2], [0.2, 0.5])])
    h = hardness_table(rows, {"a": 0.5, "b": 0.7, "c": 0.1}).set_index("task")
    assert h.at["a", "dedicated_test_error"] == 0.1 and h.at["b", "dedicated_test_error"] == 0.2
    assert np.isnan(h.at["c", "dedicated_test_error"]) and h.at["b", "hardness"] == 0.7


def _identity_rows(n_targets=12):
    targets = [f"t{i:02d}" for i in range(n_targets)]
    ce = np.linspace(0.6, 0.05, n_targets)   # reversed: sorting must reorder
    rows = [cells("identity", targets, ce, 0.05 + 0.3 * ce)]
    rows += [cells(t, [t], [0.0], [0.04 + 0.1 * ce[i]], source_test_accuracy=0.97 - 0.1 * ce[i])
             for i, t in enumerate(targets) if i != 0]   # t00: no run
    return pd.concat(rows, ignore_index=True), targets, ce


def test_table1_order_layout_and_markdown():
    rows, targets, ce = _identity_rows()
    long = table1(rows, "identity")
    assert list(long["target"]) == targets[::-1]
    assert np.isnan(long.set_index("target").at["t00", "dedicated_accuracy"])
    t05 = long.set_index("target").loc["t05"]
    assert t05["transfer_minus_dedicated"] == pytest.approx((0.95 - 0.3 * ce[5]) - (0.96 - 0.1 * ce[5]))
    wide = table1_layout(long, k=5)
    assert list(wide.columns) == targets[::-1][:5] + targets[::-1][-5:] + [AVERAGE]
    assert wide.at["transfer accuracy", AVERAGE] == pytest.approx(np.mean(0.95 - 0.3 * ce))
    assert wide.at[DEDICATED_SVM, AVERAGE] == pytest.approx(np.mean(0.96 - 0.1 * ce[1:]))
    # the paper's row 10: the dedicated network's own softmax accuracy, beside the SVM on its embedding
    assert wide.at[DEDICATED_NET, AVERAGE] == pytest.approx(np.mean(0.97 - 0.1 * ce[1:]))
    assert long.set_index("target").at["t05", "dedicated_network_accuracy"] == pytest.approx(0.97 - 0.1 * ce[5])
    assert list(wide.index) == ["CE (nats)", DEDICATED_NET, DEDICATED_SVM, "transfer accuracy"]
    assert np.isnan(wide.at["CE (nats)", AVERAGE])
    md = table1_markdown(wide, "x")
    assert md.count("\n|") == 6 and "| CE (nats) | 0.050 |" in md and md.rstrip().endswith("|")
    assert len(table1_layout(long.head(6), k=5).columns) == 7   # <= 2k targets: all shown
    p = table1_pattern(long)
    assert p["k"] == 5 and p["top_transfer"] > p["bottom_transfer"] and p["top_gap"] > p["bottom_gap"]
    assert table1_pattern(long.head(1))["k"] == 0


def test_fraction_curves():
    runs = []
    for f, n in ((0.1, 10), (1.0, 100)):
        for seed in (0, 1):
            runs.append(cells("identity", ["m", "d"], [0.1, 0.2], [0.1 + f / 10 + seed / 100, 0.3]).assign(
                train_fraction=f, n_train=n, seed=seed))
            runs.append(cells("m", ["m"], [0.0], [0.2 + seed / 100]).assign(train_fraction=f, n_train=n, seed=seed))
    c = fraction_curves(pd.concat(runs), "identity", ["m", "d"])
    got = c.set_index(["target", "kind", "train_fraction"])
    assert got.at[("m", "transferred", 0.1), "accuracy"] == pytest.approx(1 - (0.11 + 0.005))
    assert got.at[("m", "dedicated", 1.0), "n_seeds"] == 2 and got.at[("m", "dedicated", 1.0), "n_train"] == 100
    assert ("d", "dedicated", 0.1) not in got.index and len(got.loc["d"]) == 2


def test_theorem1_check_by_hand():
    """The fitted head alone is checked: rows whose head falls below the bound are reported even where
    k-bar (which attains the bound by construction) passes."""
    runs = pd.DataFrame({
        "source": "a", "target": ["a", "b", "c", "d", "e"], "seed": 0, "train_fraction": 1.0,
        "train_nll": [0.1, 0.9, 0.8, 0.7 - THEOREM1_TOL / 2, 0.5],
        "test_nll": [0.3, 0.5, 0.6, np.nan, 0.9],
        "ce_head_train_ll": [-0.1, -0.6, -0.6, -0.7, np.nan],
        "theorem1_bound": [-0.2, -0.7, -0.7, -0.7, np.nan],
    })
    c, s = theorem1_check(runs, "linear_svm")
    assert (c["head"] == "linear_svm").all()
    np.testing.assert_allclose(c["train_ll"], [-0.1, -0.9, -0.8, -0.7 + THEOREM1_TOL / 2, -0.5])
    np.testing.assert_allclose(c["margin"][:4], [0.1, -0.2, -0.1, THEOREM1_TOL / 2])
    assert list(c["violates"]) == [False, True, True, False, False]   # b, c: k-bar passes there, the head does not
    assert list(c["test_violates"]) == [True, False, False, False, False]   # a: -0.3 < -0.2
    assert s["train"]["n_checked"] == 4 and s["train"]["n_violations"] == 2
    assert s["train"]["max_violation"] == pytest.approx(0.2) and s["train"]["min"] == pytest.approx(-0.2)
    assert s["train"]["median"] == pytest.approx(np.median([0.1, -0.2, -0.1, THEOREM1_TOL / 2]))
    assert s["test"]["n_checked"] == 3 and s["test"]["n_violations"] == 1
    assert s["kbar"]["n_checked"] == 4 and s["kbar"]["n_below"] == 0
    claims = theorem1_claims(s)
    assert [x.verdict for x in claims] == [NOT_HELD, NOT_HELD] and "2 of 4 cells" in claims[0].measured
    # the old check, max(head, k-bar), would have passed every cell
    assert (np.fmax(c["train_ll"], c["kbar_train_ll"]) - c["bound"]).min() > -THEOREM1_TOL
    # k-bar as the head: nothing to check on train, the test side still is
    c2, s2 = theorem1_check(runs, "ce_head")
    assert not c2["violates"].any() and theorem1_claims(s2)[0].verdict.startswith("not tested")
    assert s2["test"]["n_violations"] == 1


def test_rank_agreement_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    for n in (5, 30, 80):   # 80: the scipy branch of the Kendall computation
        x = rng.integers(0, 4, size=(6, n)).astype(float)
        y = rng.normal(size=(6, n))
        y[:, :3] = 0.0
        got = rank_agreement(x, y)
        ref = [[stats.pearsonr(a, b)[0], stats.spearmanr(a, b)[0], stats.kendalltau(a, b)[0],
                stats.weightedtau(a, b)[0]]
               for a, b in zip(x, y)]
        np.testing.assert_allclose(got, ref, atol=1e-12)
    assert np.isnan(rank_agreement([1, 2], [2, 3])).all() and np.isnan(rank_agreement([1, 1, 1], [1, 2, 3])).all()


def _estimator_rows(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in ("a", "b", "c", "d"):
        targets = [f"t{i}" for i in range(15)]
        acc = rng.uniform(0.5, 1.0, 15)
        ce = 1 - acc + rng.normal(0, 0.02, 15)
        out.append(pd.DataFrame({"source": s, "target": targets, "test_accuracy": acc, "test_error": 1 - acc,
                                 "nce": -ce, "ce_mm": ce + 0.01, "leep": rng.normal(size=15), "logme": np.nan}))
    return pd.concat(out, ignore_index=True)


def test_new_estimators_are_ranked_higher_is_better():
    rows = _estimator_rows()
    acc = rows.test_accuracy.to_numpy()
    rows = rows.assign(transrate=acc, gbc=acc - 2, nleep=-acc)    # GBC is negative, N-LEEP a log-likelihood
    got = estimator_comparison(rows, n_boot=50, n_boot_source=50).set_index(["estimator", "scope", "metric"])
    assert got.at[("transrate", "pooled", "spearman"), "value"] == pytest.approx(1)
    assert got.at[("gbc", "pooled", "spearman"), "value"] == pytest.approx(1)
    assert got.at[("nleep", "pooled", "spearman"), "value"] == pytest.approx(-1)


def test_estimator_comparison_values_signs_and_seeded_cis():
    rows = _estimator_rows()
    cmp_ = estimator_comparison(rows, n_boot=200, n_boot_source=100, seed=3)
    assert set(cmp_["estimator"]) == {"nce", "ce_mm", "leep", "random_ranking"}   # logme all NaN: left out
    got = cmp_.set_index(["estimator", "scope", "metric"])
    a = rows[rows.source == "a"]
    assert got.at[("nce", "a", "pearson"), "value"] == pytest.approx(stats.pearsonr(a.nce, a.test_accuracy)[0])
    assert got.at[("ce_mm", "a", "kendall"), "value"] == pytest.approx(stats.kendalltau(-a.ce_mm, a.test_accuracy)[0])
    assert got.at[("nce", "pooled", "weighted_tau"), "value"] == pytest.approx(
        stats.weightedtau(rows.nce, rows.test_accuracy)[0])
    per = [got.at[("leep", s, "spearman"), "value"] for s in "abcd"]
    assert got.at[("leep", MEAN, "spearman"), "value"] == pytest.approx(np.mean(per))
    assert got.at[("nce", "pooled", "pearson"), "n"] == 60
    sub = cmp_.dropna(subset=["ci_low"])
    assert len(sub) == len(cmp_) and (sub.ci_low <= sub.ci_high).all()
    nce = cmp_[cmp_.estimator == "nce"]
    assert (nce.ci_low > 0.5).all()   # a strong estimator's intervals stay far from zero
    again = estimator_comparison(rows, n_boot=200, n_boot_source=100, seed=3)
    pd.testing.assert_frame_equal(cmp_, again)
    assert best_estimator(cmp_) in ("nce", "ce_mm") and best_estimator(cmp_.iloc[:0]) is None
    assert set(METRICS) == set(cmp_.metric)


def test_claim_verdicts():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 10)
    good = cells("good", [f"t{i}" for i in range(10)], x, 0.1 + x / 2 + rng.normal(0, 0.01, 10))
    bad = cells("bad", [f"t{i}" for i in range(10)], x, rng.uniform(0, 1, 10))
    tiny = cells("tiny", ["t0", "t1"], [0.1, 0.2], [0.1, 0.2])
    design = lambda rows: design_claims(ce_correlations(rows.assign(n_classes=2, source_n_classes=2, seed=0,
                                                                    train_fraction=1.0),
                                                        rows.assign(seed=0, train_fraction=1.0), n_boot=50))
    per = design(pd.concat([good, bad, tiny]))[0]
    assert per.verdict == NOT_HELD and "1 of 2 testable" in per.measured and "bad" in per.measured
    assert "1 untestable" in per.measured
    assert design(good)[0].verdict == HELD
    assert design(tiny)[0].verdict.startswith("not tested")
    side = dict(n_checked=3, n_violations=0, max_violation=0.0, min=0.01, q05=0.01, median=0.1, max=0.3)
    t = dict(tol=1e-4, head="logistic", probabilistic=True, n_cells=3, train=side, test=side)
    assert [c.verdict for c in theorem1_claims(t)] == [HELD, HELD]
    assert theorem1_claims({**t, "test": {**side, "n_violations": 1}})[1].verdict == NOT_HELD
    assert theorem1_claims({**t, "train": {**side, "n_checked": 0}})[0].verdict.startswith("not tested")
    nan_pattern = dict(k=0, top_transfer=np.nan, bottom_transfer=np.nan, top_gap=np.nan, bottom_gap=np.nan)
    c = table1_claims("identity", cells("identity", [], [], []), nan_pattern)
    assert [x.verdict.split(":")[0] for x in c] == ["not tested"] * 3


def test_one_source_mean_row_is_that_source():
    rows = _estimator_rows()
    rows = rows[rows.source == "b"]
    cmp_ = estimator_comparison(rows, n_boot=100, n_boot_source=100, seed=0)
    own = cmp_[cmp_.scope == "b"].reset_index(drop=True)[["value", "ci_low", "ci_high"]]
    mean = cmp_[(cmp_.scope == MEAN) & (cmp_.estimator != "random_ranking")].reset_index(drop=True)
    pd.testing.assert_frame_equal(own, mean[["value", "ci_low", "ci_high"]])
    assert own["ci_low"].notna().all()


def test_table1_columns_on_real_celeba_labels_are_the_papers(shared_data):
    """Table 1 of the paper, from the real CelebA labels: identity's five most and five least
    transferable attributes by CE, in the paper's order, with CE within 0.002 of row 9 (the transfer
    rows are computed on train + val; neither that nor train alone gives row 9 to every digit)."""
    from transferability.data.registry import load_dataset
    from transferability.estimators.label_only import ce_matrix

    table = load_dataset(group_config("dataset", "celeba", root=str(shared_data / "celeba"))).labels
    lab = table.subset("trainval").labels
    ce = ce_matrix(lab, lab[["identity"]])["identity"]
    rows = cells("identity", list(ce.index), ce.to_numpy(), 0.05 + 0.4 * ce.to_numpy())
    wide = table1_layout(table1(rows, "identity"))
    paper = {"Male": 0.017, "Bald": 0.026, "Gray_Hair": 0.052, "Mustache": 0.062, "Double_Chin": 0.083,
             "Attractive": 0.361, "Wavy_Hair": 0.381, "High_Cheekbones": 0.476, "Smiling": 0.521,
             "Mouth_Slightly_Open": 0.551}
    assert list(wide.columns) == list(paper) + [AVERAGE]
    np.testing.assert_allclose(wide.loc["CE (nats)"].iloc[:-1].to_numpy(float), list(paper.values()), atol=2e-3)
