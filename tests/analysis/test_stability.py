"""The stability of the verdicts over setups on constructed cases whose answer is known: an estimator that is
perfect in some setups and reversed in the others, the best estimator changing with it, and the setup stability
score against Kendall's tau computed pair by pair."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from transferability.analysis import stability as st
from transferability.analysis.selection import RANK, SELECT


def matrix(n=6, seed=0, flip=False):
    """A square matrix (task i is source i and target i): `nce` equal to the accuracy (reversed with `flip`),
    `leep` a noisy copy of it, and the baseline `knn1` its reverse."""
    rng = np.random.default_rng(seed)
    s, t = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    acc = rng.uniform(0.5, 0.95, (n, n))
    leep = acc + rng.normal(0, 0.15, (n, n))
    return pd.DataFrame({"source": [f"k{i}" for i in s.ravel()], "target": [f"k{j}" for j in t.ravel()],
                         "test_accuracy": acc.ravel(), "nce": (-acc if flip else acc).ravel(), "leep": leep.ravel(),
                         "knn1": -acc.ravel(), "n_classes": 2})


def test_verdicts_and_the_best_estimator_on_a_known_case():
    head = {"nce": 0.9, "leep": 0.4, "knn1": 0.5, "random_ranking": 0.0}
    assert st.verdicts(head) == ({"nce": 1.0, "leep": 0.0}, "nce")
    assert st.verdicts({"nce": 0.1, "random_ranking": 0.0}) == ({"nce": 1.0}, "nce")


def test_an_estimator_reversed_in_a_quarter_of_the_setups():
    reference = matrix()
    setups = [st.Setup("seed", f"seed={i}", matrix(flip=i == 3)) for i in range(4)]
    got = st.stability(reference, setups)
    for direction in (SELECT, RANK):
        g = got[(got["direction"] == direction) & (got["scope"] == "stability over seed")]
        g = g.set_index(["estimator", "metric"])["value"]
        # nce: perfect (beats every baseline, the best) in 3 setups; reversed (below chance) in the fourth
        assert g[("nce", "verdict_agreement")] == 0.75 and g[("nce", "win_share")] == 0.75
        assert g[(st.BEST, "agreement")] == 0.75
        assert g[("leep", "win_share")] == 0.25   # the best where nce is reversed
        assert g[("leep", "verdict_agreement")] == 1.0   # a noisy copy beats knn1 and chance in all four


def test_setups_of_several_axes_are_also_read_together():
    reference = matrix()
    setups = ([st.Setup("seed", f"seed={i}", matrix()) for i in range(2)]
              + [st.Setup("head", f"head={h}", matrix(flip=h == "b")) for h in "ab"])
    got = st.stability(reference, setups)
    scopes = set(got["scope"])
    assert scopes == {"stability over seed", "stability over head", f"stability over {st.ALL}"}
    every = got[(got["scope"] == f"stability over {st.ALL}") & (got["direction"] == SELECT)]
    assert every.set_index(["estimator", "metric"]).at[("nce", "verdict_agreement"), "value"] == 0.75
    assert every.set_index(["estimator", "metric"]).at[("nce", "verdict_agreement"), "n"] == 4


def test_setup_stability_score_is_the_mean_pairwise_kendall_tau():
    same = {"a": 0.1, "b": 0.5, "c": 0.9}
    assert st.setup_stability_score([same, same, same]) == (1.0, 3)
    reverse = {"a": 0.9, "b": 0.5, "c": 0.1}
    assert st.setup_stability_score([same, reverse]) == (-1.0, 1)
    rng = np.random.default_rng(0)
    heads = [{n: (v if rng.random() > 0.15 else np.nan) for n, v in zip("abcdef", np.round(rng.random(6), 1))}
             for _ in range(12)]
    taus = []
    for a, b in itertools.combinations(heads, 2):
        common = [n for n in a if np.isfinite(a[n]) and np.isfinite(b[n])]
        x, y = [a[n] for n in common], [b[n] for n in common]
        if len(common) >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0:
            taus.append(stats.kendalltau(x, y).statistic)
    score, n = st.setup_stability_score(heads)
    assert n == len(taus) and score == pytest.approx(np.mean(taus), rel=1e-12)


def test_half_subsets_draw_half_the_sources_and_targets():
    rows = matrix(n=7)
    subsets = st.half_subsets(rows, n_draws=20, seed=3)
    assert len(subsets) == 20 and {s.axis for s in subsets} == {"subset"}
    for s in subsets:
        assert s.rows["source"].nunique() == 3 and s.rows["target"].nunique() == 3
    again = st.half_subsets(rows, n_draws=20, seed=3)
    assert all(a.rows.equals(b.rows) for a, b in zip(subsets, again))
    assert not all(a.rows.equals(b.rows) for a, b in zip(subsets, st.half_subsets(rows, n_draws=20, seed=4)))


def test_headlines_of_the_two_directions():
    rows = matrix()
    select, rank = st.selection_headline(rows), st.ranking_headline(rows)
    assert select["nce"] == pytest.approx(1.0) and rank["nce"] == pytest.approx(1.0)
    assert select["knn1"] == pytest.approx(-1.0) and select["random_ranking"] == rank["random_ranking"] == 0.0
