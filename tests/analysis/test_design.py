"""analysis/design.py: baselines, views and the correlation table against hand computations and scipy."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from transferability.analysis.design import (
    ALL,
    BINARY,
    MULTI_TARGET,
    PARTIAL,
    add_baselines,
    ce_correlations,
    estimator_partials,
    target_baselines,
    views,
)
from transferability.analysis.inference import partial_corr


def test_target_baselines_by_hand():
    labels = pd.DataFrame({"a": [0, 0, 0, 1], "b": ["x", "y", "z", None]})
    got = target_baselines(labels).set_index("task")
    assert got.at["a", "target_entropy"] == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    assert got.at["a", "majority_error"] == pytest.approx(0.25)
    assert got.at["b", "target_entropy"] == pytest.approx(np.log(3))      # the missing label left out
    assert got.at["b", "majority_error"] == pytest.approx(2 / 3)


def _matrix(seeds=3, seed=0):
    """7 binary tasks + one 4-class task; error = CE + a seed-dependent noise; H(Y) varies per target."""
    rng = np.random.default_rng(seed)
    tasks = [f"b{i}" for i in range(7)] + ["m"]
    k = {t: 2 for t in tasks[:-1]} | {"m": 4}
    h = {t: 0.3 + 0.08 * i for i, t in enumerate(tasks[:-1])} | {"m": 1.3}
    rows = []
    for s in tasks:
        for t in tasks:
            ce = 0.0 if s == t else h[t] * rng.uniform(0.5, 1.0)
            for sd in range(seeds):
                err = 0.1 * ce + 0.01 * rng.normal()
                rows.append(dict(source=s, target=t, seed=sd, train_fraction=1.0, n_classes=k[t], ce=ce,
                                 test_error=err, test_accuracy=1 - err, nce=-ce))
    runs = pd.DataFrame(rows)
    mean = runs.groupby(["source", "target", "train_fraction"], as_index=False).mean(numeric_only=True)
    base = pd.DataFrame({"task": tasks, "target_entropy": [h[t] for t in tasks], "majority_error": 0.5})
    return add_baselines(mean, base), runs


def test_views_split_binary_pairs_from_multiclass_targets():
    rows, _ = _matrix()
    v = views(rows)
    assert len(v[BINARY]) == 7 * 6 and set(v[BINARY]["target"]) == {f"b{i}" for i in range(7)}
    assert set(v[MULTI_TARGET]["target"]) == {"m"} and len(v[MULTI_TARGET]) == 7
    assert len(v[ALL]) == 8 * 7 and not (v[ALL]["source"] == v[ALL]["target"]).any()


def test_ce_correlations_match_hand_computations():
    rows, runs = _matrix()
    corr = ce_correlations(rows, runs, n_boot=200, seed=1)
    b = corr[corr["view"] == BINARY].set_index("scope")
    g = views(rows)[BINARY]
    one = g[g["source"] == "b1"]
    assert b.at["b1", "pearson_r"] == pytest.approx(stats.pearsonr(one["ce"], one["test_error"]).statistic)
    assert b.at["b1", "partial_r_given_entropy"] == pytest.approx(
        partial_corr(one["ce"], one["test_error"], one["target_entropy"])["r"])
    assert b.at["pooled", "partial_r_given_entropy"] == pytest.approx(
        partial_corr(g["ce"], g["test_error"], g["target_entropy"])["r"])
    per = b.drop(index="pooled")
    np.testing.assert_allclose(per["bh_q"], stats.false_discovery_control(per["pearson_p"]))
    assert (b.at["pooled", "ci_method"] == "crossed bootstrap"
            and b.at["pooled", "r_ci_low"] < b.at["pooled", "r_ci_high"])
    # noise ceiling: three seeds, noise 0.01 against a CE spread of ~0.1 * 0.3: well defined and below 1
    assert 0 < b.at["pooled", "noise_ceiling"] < 1
    # the multi-class target's own row: one point per source
    m = corr[corr["view"] == MULTI_TARGET].set_index("scope")
    assert m.at["m", "n"] == 7
    assert set(corr["verdict"]) <= {"held", "did not hold", "untestable"}
    again = ce_correlations(rows, runs, n_boot=200, seed=1)
    pd.testing.assert_frame_equal(corr, again)


def test_estimator_partials_orient_scores_and_match_partial_corr():
    rows, runs = _matrix()
    got = estimator_partials(rows, {"nce": 1.0, "target_entropy": -1.0}, runs, n_boot=100, seed=0)
    assert set(got["metric"]) == {PARTIAL}
    g = got.set_index(["estimator", "scope"])
    t = rows[rows["source"] != rows["target"]]
    want = partial_corr(t["nce"], t["test_accuracy"], t["target_entropy"])
    assert g.at[("nce", "pooled"), "value"] == pytest.approx(want["r"])
    assert g.at[("nce", "pooled"), "p"] == pytest.approx(want["p"])
    # partial r of -CE with accuracy given H(Y) equals that of CE with error
    assert g.at[("nce", "pooled"), "value"] == pytest.approx(
        partial_corr(t["ce"], t["test_error"], t["target_entropy"])["r"])
    assert np.isnan(g.at[("target_entropy", "pooled"), "value"])
    per = got[(got["estimator"] == "nce") & ~got["scope"].isin(["pooled", "mean over sources"])]
    np.testing.assert_allclose(per["bh_q"], stats.false_discovery_control(per["p"]))
    assert g.at[("nce", "mean over sources"), "value"] == pytest.approx(per["value"].mean())
    assert estimator_partials(rows.drop(columns="target_entropy"), {"nce": 1.0}).empty


def test_random_baseline_by_hand():
    from transferability.analysis.design import random_baseline
    from transferability.analysis.summary import HELD, random_claim

    rows, _ = _matrix()
    targets = sorted(rows["target"].unique())
    rnd = pd.DataFrame({"source": "random", "target": targets, "test_error": 0.5, "ce": np.nan})
    got = random_baseline(pd.concat([rows, rnd], ignore_index=True))
    t = rows[rows["source"] != rows["target"]]
    diff = 0.5 - t.groupby("target")["test_error"].median()
    assert got["n_targets"] == len(targets) and got["median_diff"] == pytest.approx(diff.median())
    assert got["p"] == pytest.approx(stats.wilcoxon(diff).pvalue)
    assert got["share_pairs_beating_random"] == 1.0
    assert random_claim(got).verdict == HELD
    assert random_baseline(rows) is None and random_claim(None).verdict.startswith("not tested")


def test_no_transfer_pairs_gives_an_empty_table_with_its_columns():
    rows, runs = _matrix()
    only_dedicated = rows[rows["source"] == rows["target"]]
    corr = ce_correlations(only_dedicated, runs, n_boot=10)
    assert corr.empty and {"view", "scope", "verdict", "noise_ceiling"} <= set(corr.columns)
    from transferability.analysis.summary import design_claims

    assert design_claims(corr)[0].verdict.startswith("not tested")
