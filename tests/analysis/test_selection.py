"""Choosing a source per target: each measure against a brute-force computation on small matrices (every order of
the candidates that a tied score allows, enumerated), the random ranking's expectation against all n! orders,
the correlations against scipy, the crossed bootstrap against an explicitly resampled matrix, the paired margins,
the undefined scores of the target alone and the multi-label target."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from transferability.analysis import selection as sel
from transferability.analysis.inference import crossed_counts
from transferability.analysis.ranking import MEAN


def tie_orders(score):
    """Every order of the candidates that ranks `score` descending (NaN last): the orders a uniformly random
    tie break draws from, each equally likely."""
    s = np.where(np.isnan(score), -np.inf, score)
    return [p for p in itertools.permutations(range(len(s))) if all(s[a] >= s[b] for a, b in zip(p, p[1:]))]


def brute(score, acc, k):
    orders = tie_orders(score)
    best = acc == acc.max()
    chosen = np.mean([acc[p[0]] for p in orders])
    return chosen, np.mean([best[list(p[:k])].any() for p in orders])


@pytest.mark.parametrize("seed", range(12))
def test_choice_measures_are_their_expectation_over_tie_orders(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 7))
    score = rng.integers(0, 3, n).astype(float)          # many ties
    score[rng.random(n) < 0.2] = np.nan                  # unscored: last
    acc = rng.choice([0.6, 0.7, 0.8], n)                 # ties for the best too
    if np.isnan(score).all():
        score[0] = 1.0
    chosen, _ = brute(score, acc, 1)
    assert sel.chosen_accuracy(score, acc) == pytest.approx(chosen)
    for k in (1, 2, 3, 5):
        assert sel.recall_at_k(score, acc, k) == pytest.approx(brute(score, acc, k)[1]), k
    m = dict(zip(sel.MEASURES, sel.selection_measures(score[None], acc)[0]))
    assert m["top1_relative_accuracy"] == pytest.approx(chosen / acc.max())
    assert m["regret"] == pytest.approx(acc.max() - chosen)
    assert m["recall_at_3"] == pytest.approx(brute(score, acc, 3)[1])


@pytest.mark.parametrize("n", [2, 4, 6])
def test_random_ranking_is_the_mean_over_all_orders(n):
    acc = np.array([0.5, 0.9, 0.7, 0.6, 0.8, 0.55])[:n]
    orders = list(itertools.permutations(range(n)))
    got = dict(zip(sel.MEASURES, sel.selection_measures(np.full((1, n), 7.0), acc, chance=np.array([True]))[0]))
    assert got["top1_relative_accuracy"] == pytest.approx(np.mean([acc[p[0]] for p in orders]) / acc.max())
    assert got["top1_relative_accuracy"] == pytest.approx(acc.mean() / acc.max())
    assert got["regret"] == pytest.approx(acc.max() - acc.mean())
    for k in sel.RECALL_K:
        assert got[f"recall_at_{k}"] == pytest.approx(np.mean([np.argmax(acc) in p[:k] for p in orders]))
        assert got[f"recall_at_{k}"] == pytest.approx(min(k, n) / n)
    # tau over all orders: each order's weighted tau, averaged, is 0 (a strict order against distinct accuracies)
    if n >= 3:
        taus = [stats.weightedtau(np.argsort(p), acc).statistic for p in orders]
        assert np.mean(taus) == pytest.approx(0.0, abs=1e-12) and got["weighted_tau"] == 0.0


def test_correlations_are_scipys_over_the_scored_candidates():
    rng = np.random.default_rng(3)
    acc = rng.random(9)
    scores = rng.normal(size=(4, 9))
    scores[1, [2, 5]] = np.nan
    scores[2] = np.round(scores[2])                      # ties in the score
    scores[3] = 1.0                                      # constant: undefined
    got = sel.selection_measures(scores, acc)
    for p in range(3):
        ok = np.isfinite(scores[p])
        want = [stats.weightedtau(scores[p, ok], acc[ok]).statistic, stats.pearsonr(scores[p, ok], acc[ok])[0],
                stats.spearmanr(scores[p, ok], acc[ok])[0]]
        np.testing.assert_allclose(got[p, :3], want, rtol=1e-12)
    assert np.isnan(got[3, :3]).all() and np.isfinite(got[3, 3:]).all()   # constant: ties, still a choice


@pytest.mark.parametrize("seed", range(30))
def test_weighted_tau_rows_equal_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 25))
    x = rng.integers(0, int(rng.integers(1, 5)), (3, n)).astype(float) if seed % 2 else rng.normal(size=(3, n))
    y = rng.integers(0, 3, n).astype(float) if seed % 3 else rng.normal(size=n)
    want = np.array([stats.weightedtau(a, y).statistic for a in x], float)
    np.testing.assert_allclose(sel.weighted_tau_rows(x, y), want, rtol=1e-12, atol=1e-15)


def matrix_rows(acc: np.ndarray, **scores) -> pd.DataFrame:
    """One line per (source, target) of a square matrix (task i is source i and target i), diagonal dedicated."""
    n = len(acc)
    s, t = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    rows = pd.DataFrame({"source": [f"k{i}" for i in s.ravel()], "target": [f"k{j}" for j in t.ravel()],
                         "test_accuracy": acc.ravel(), "n_classes": 2})
    for name, v in scores.items():
        rows[name] = np.asarray(v, float).ravel()
    return rows


def square(n=5, seed=0):
    rng = np.random.default_rng(seed)
    acc = rng.uniform(0.5, 0.95, (n, n))
    return acc, dict(nce=acc + rng.normal(0, 0.05, (n, n)), leep=rng.normal(size=(n, n)),
                     target_entropy=np.tile(rng.random(n), (n, 1)),                # of the target: same per column
                     source_n_classes=np.tile(rng.integers(2, 9, n)[:, None], (1, n)))   # of the source


def test_per_target_rows_exclude_the_dedicated_cell_and_the_random_row():
    acc, scores = square()
    rows = matrix_rows(acc, **scores)
    rnd = rows[rows["source"] == "k0"].assign(source="random", test_accuracy=1.0, nce=99.0)
    table = sel.selection_table(pd.concat([rows, rnd]), n_boot=0)
    got = table[(table["scope"] == "k2") & (table["estimator"] == "nce")].set_index("metric")
    others = [i for i in range(5) if i != 2]
    a, s = acc[others, 2], scores["nce"][others, 2]
    assert (got["n"] == 4).all()
    assert got.at["weighted_tau", "value"] == pytest.approx(stats.weightedtau(s, a).statistic)
    assert got.at["top1_relative_accuracy", "value"] == pytest.approx(a[np.argmax(s)] / a.max())
    assert got.at["top1_relative_accuracy", "chosen"] == f"k{others[np.argmax(s)]}"
    assert got.at["regret", "value"] == pytest.approx(a.max() - a[np.argmax(s)])


def test_a_score_of_the_target_alone_is_undefined_and_one_of_the_source_chooses():
    acc, scores = square()
    table = sel.selection_table(matrix_rows(acc, **scores), n_boot=0)
    mean = table[table["scope"] == sel.MEAN_OVER_TARGETS].set_index(["estimator", "metric"])
    assert mean.loc["target_entropy", "value"].isna().all() and (mean.loc["target_entropy", "n"] == 0).all()
    assert "target_entropy" not in set(table.loc[table["scope"] == "k1", "estimator"])
    assert mean.loc["source_n_classes", "value"].notna().all()
    assert mean.at[("random_ranking", "recall_at_1"), "value"] == pytest.approx(1 / 4)   # 4 candidates each


def test_pooled_mean_and_its_crossed_bootstrap_match_an_explicit_resample():
    acc, scores = square(n=6, seed=1)
    rows = matrix_rows(acc, nce=scores["nce"], leep=scores["leep"])
    c = sel.candidates(rows, ["nce", "leep", "random_ranking"])
    boot = sel.crossed_means(c, 5, np.random.default_rng(4))
    cs, ct = crossed_counts(6, 6, 5, np.random.default_rng(4))
    for b in range(5):
        per = []
        for t in range(6):
            idx = [s for s in range(6) for _ in range(cs[b, s]) if s != t]   # drawn sources, less the dedicated
            m = sel.selection_measures(c.scores[:, t, idx], c.acc[t, idx], c.chance)
            per += [m] * ct[b, t]                                            # each drawn copy of the target
        np.testing.assert_allclose(boot[b], np.nanmean(per, 0), rtol=1e-12)
    table = sel.selection_table(rows, n_boot=200, seed=4)
    mean = table[table["scope"] == sel.MEAN_OVER_TARGETS].set_index(["estimator", "metric"])
    point = sel.per_target(c)
    assert mean.at[("nce", "weighted_tau"), "value"] == pytest.approx(np.nanmean(point[:, 0, 0]))
    assert mean.at[("nce", "weighted_tau"), "ci_low"] < mean.at[("nce", "weighted_tau"), "ci_high"]


def test_margins_are_paired_differences_with_the_best_baseline():
    acc, scores = square(n=6, seed=2)
    rows = matrix_rows(acc, nce=scores["nce"], leep=scores["leep"], knn1=acc + 0.01 * scores["leep"],
                       source_n_classes=scores["source_n_classes"])
    table = sel.selection_table(rows, n_boot=300, seed=0)
    mean = table[table["scope"] == sel.MEAN_OVER_TARGETS].set_index(["estimator", "metric"])["value"]
    margin = table[table["scope"] == f"{sel.MEAN_OVER_TARGETS}: {sel.MARGIN}"].set_index(["estimator", "metric"])
    for m in ("weighted_tau", "regret"):
        base = ["knn1", "source_n_classes", "random_ranking"]
        best = (min if m == "regret" else max)(base, key=lambda b: mean[(b, m)])
        assert (margin.loc[(slice(None), m), "best_baseline"] == best).all()
        sign = -1 if m == "regret" else 1
        assert margin.at[("nce", m), "value"] == pytest.approx(sign * (mean[("nce", m)] - mean[(best, m)]))
    assert set(margin.index.get_level_values(0)) == {"nce", "leep"}   # estimators only
    # paired: the same resamples for both, so a score equal to the best baseline has a zero-width interval
    same = sel.selection_table(rows.assign(nce=rows["knn1"]), n_boot=100, seed=0)
    m = same[(same["scope"] == f"{sel.MEAN_OVER_TARGETS}: {sel.MARGIN}") & (same["estimator"] == "nce")
             & (same["metric"] == "weighted_tau")].iloc[0]
    assert m["best_baseline"] == "knn1" and m["value"] == 0 and m["ci_low"] == m["ci_high"] == 0


def test_rank_margins_resample_sources_with_the_random_ranking_as_a_baseline():
    per = pd.DataFrame({"scope": ["a", "b", "c", "a", "b", "c"], "estimator": ["nce"] * 3 + ["target_entropy"] * 3,
                        "value": [0.5, 0.3, 0.1, -0.2, -0.1, -0.3]})
    comparison = pd.concat([per.assign(metric=m) for m in ("pearson", "weighted_tau")]
                           + [pd.DataFrame({"scope": [MEAN], "estimator": ["nce"], "value": [0.3],
                                            "metric": ["weighted_tau"]})])
    got = sel.rank_margins(comparison, n_boot=200).set_index("metric")
    assert got.at["weighted_tau", "best_baseline"] == "random_ranking"   # 0 beats target_entropy's -0.2
    assert got.at["weighted_tau", "value"] == pytest.approx(0.3)
    assert 0.1 <= got.at["weighted_tau", "ci_low"] < got.at["weighted_tau", "ci_high"] <= 0.5


def test_multilabel_target_averages_the_attributes_less_the_source():
    acc, scores = square(n=4, seed=3)
    rows = matrix_rows(acc, nce=scores["nce"], source_n_classes=scores["source_n_classes"])
    rows["logme_multilabel"] = rows["source"].map({"k0": 1.0, "k1": 2.0, "k2": 3.0, "k3": 4.0})
    rows["multilabel_n_targets"] = np.where(rows["source"] == "k3", 2, 3)   # k3's joint score: other attributes
    extra = pd.DataFrame({"source": [f"k{i}" for i in range(4)], "target": "many", "test_accuracy": 0.9,
                          "n_classes": 10})   # a multi-class target: not an attribute
    ml, attributes = sel.multilabel_rows(pd.concat([rows, extra]))
    assert attributes == ["k0", "k1", "k2", "k3"]
    ml = ml.set_index("source")
    assert ml.at["k1", "test_accuracy"] == pytest.approx(acc[1, [0, 2, 3]].mean())
    assert ml.at["k1", "nce"] == pytest.approx(scores["nce"][1, [0, 2, 3]].mean())
    assert ml.at["k1", "n_attributes"] == 3 and ml.at["k1", "logme_multilabel"] == 2.0
    assert np.isnan(ml.at["k3", "logme_multilabel"])
    table = sel.selection_table(ml.reset_index(), n_boot=0, scope="multilabel:x", extra=("logme_multilabel",))
    assert set(table["scope"]) == {"multilabel:x", f"multilabel:x: {sel.MARGIN}"}
    assert "logme_multilabel" in set(table["estimator"])
