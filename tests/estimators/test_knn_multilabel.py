"""The k-NN probe against scikit-learn's KNeighborsClassifier with leave-one-out (the same predictions: a tied vote
goes to the smallest class, equal distances to the lower row index), and the multi-label target's LogME and
H-score against brute-force evaluations of their definitions."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal
from sklearn.neighbors import KNeighborsClassifier

from helpers.estimators import settings
from transferability.estimators.knn import nearest, vote
from transferability.estimators.model_based import hscore, knn, model_based_scores, multilabel_scores


def loo_sklearn(X, y, k):
    """Leave-one-out accuracy, one fit per left-out row: scikit-learn's classifier on the other rows."""
    hits = [KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(np.delete(X, i, 0), np.delete(y, i))
            .predict(X[i:i + 1])[0] == y[i] for i in range(len(y))]
    return float(np.mean(hits))


def labelled(n=90, d=4, seed=0):
    """Continuous features (no two distances equal) and targets of 2, 3 and 7 classes; with k = 5 the 3- and
    7-class votes tie (2-2-1, 2-1-1-1 ...), so the tie rule is exercised."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = np.stack([(X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int), rng.integers(0, 3, n),
                  rng.integers(0, 7, n)], 1)
    return X, Y


@pytest.mark.parametrize("k", [1, 5])
def test_knn_equals_scikit_learn_leave_one_out(k):
    X, Y = labelled()
    ties = 0
    for j in range(Y.shape[1]):
        assert knn(X, Y[:, j], k, knn_rows=10_000, seed=0) == loo_sklearn(X, Y[:, j], k)
        votes = Y[nearest(X, k), j]
        ties += sum((np.bincount(v) == np.bincount(v).max()).sum() > 1 for v in votes)
    assert k == 1 or ties > 0   # the case is not vacuous: tied votes occurred and were broken alike


def test_knn_predictions_equal_scikit_learns_loo_predict():
    X, Y = labelled(n=120, seed=3)
    for j in range(Y.shape[1]):
        sk = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(X, Y[:, j]).predict(None)   # LOO
        ours = vote(Y[nearest(X, 5), j][:, :, None])[:, 0]
        np.testing.assert_array_equal(ours, sk)


def test_vote_ties_go_to_the_smallest_label():
    labels = np.array([[3, 1, 3, 1, 0], [2, 2, 0, 0, 1], [4, 4, 4, 1, 1]])[:, :, None]
    np.testing.assert_array_equal(vote(labels)[:, 0], [1, 0, 4])


def test_equal_distances_go_to_the_lower_row_index():
    """Integer points (exact distances, many ties, duplicates among them) against a stable sort of the exact
    squared distances."""
    rng = np.random.default_rng(1)
    X = rng.integers(0, 3, size=(70, 3)).astype(float)
    got = nearest(X, 5)
    for i in range(len(X)):
        d = ((X - X[i]) ** 2).sum(1)
        d[i] = np.inf
        np.testing.assert_array_equal(got[i], np.argsort(d, kind="stable")[:5])


def test_all_targets_at_once_equal_one_at_a_time_with_missing_labels_left_out():
    X, Y = labelled(n=80, seed=2)
    Y[::6, 1] = -1
    got = model_based_scores(X, None, Y, which=("knn1", "knn5"), **settings())
    for j in range(Y.shape[1]):
        ok = Y[:, j] >= 0
        for k in (1, 5):
            assert got.at[j, f"knn{k}"] == loo_sklearn(X[ok], Y[ok, j], k)


def test_more_rows_than_knn_rows_runs_on_the_seeded_sample():
    X, Y = labelled(n=150, seed=4)
    rows = np.sort(np.random.default_rng(7).choice(150, 60, replace=False))
    for k in (1, 5):
        assert knn(X, Y[:, 1], k, knn_rows=60, seed=7) == loo_sklearn(X[rows], Y[rows, 1], k)
    assert knn(X, Y[:, 1], 5, knn_rows=60, seed=7) != knn(X, Y[:, 1], 5, knn_rows=60, seed=8)


@pytest.mark.filterwarnings("ignore:The number of unique classes")
def test_many_classes_vote_without_per_class_work():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 3))
    y = rng.integers(0, 150, 200)
    y[:100] = np.arange(100) // 2 * 7   # pairs of rows sharing a rare class, codes far from compact
    for k in (1, 5):
        assert knn(X, y, k, knn_rows=10_000, seed=0) == loo_sklearn(X, y, k)


# ---------- the multi-label target ----------

def evidence_max(f, col):
    """max over (alpha, beta) of log N(col; 0, I/beta + F F^T/alpha) / n, by Nelder-Mead in logs."""
    n = len(col)
    neg = lambda p: -multivariate_normal(np.zeros(n), np.eye(n) / np.exp(p[1]) + f @ f.T / np.exp(p[0])).logpdf(col)
    best = min((minimize(neg, x0, method="Nelder-Mead", options=dict(xatol=1e-9, fatol=1e-12, maxiter=4000))
                for x0 in ([0, 0], [2, -1])), key=lambda r: r.fun)
    return -best.fun / n


def hscore_label_vector_brute(f, Y):
    """tr(cov(f)^+ cov(f, y) cov(y)^+ cov(y, f)) from the covariance of the stacked (features, attributes)."""
    d = f.shape[1]
    cov = np.cov(np.hstack([f, Y]).T, bias=True)
    return np.trace(np.linalg.pinv(cov[:d, :d]) @ cov[:d, d:] @ np.linalg.pinv(cov[d:, d:]) @ cov[d:, :d])


def attributes(n=48, d=3, seed=0):
    rng = np.random.default_rng(seed)
    Y = rng.integers(0, 2, size=(n, 3))
    f = rng.normal(size=(n, d)) + Y @ rng.normal(size=(3, d))
    return f, Y


def test_multilabel_logme_is_the_mean_evidence_of_the_attribute_columns():
    f, Y = attributes(n=40)
    got = multilabel_scores(f, Y)["logme_multilabel"]
    assert got == pytest.approx(np.mean([evidence_max(f, Y[:, a].astype(float)) for a in range(3)]), rel=1e-6)


def test_multilabel_hscore_matches_its_definition():
    f, Y = attributes()
    assert multilabel_scores(f, Y)["hscore_multilabel"] == pytest.approx(hscore_label_vector_brute(f, Y), rel=1e-9)


def test_multilabel_hscore_of_one_attribute_is_its_hscore():
    f, Y = attributes()
    one = multilabel_scores(f, Y[:, :1])["hscore_multilabel"]
    assert one == pytest.approx(hscore(f, Y[:, 0]), rel=1e-9)


def test_multilabel_hscore_counts_uncorrelated_attributes_once_each_and_a_copy_not_again():
    rng = np.random.default_rng(2)
    Y = np.array([[a, b] for a in (0, 1) for b in (0, 1)] * 15)   # a balanced 2 x 2 design: cov(y) diagonal
    f = rng.normal(size=(60, 4)) + Y @ rng.normal(size=(2, 4))
    both = multilabel_scores(f, Y)["hscore_multilabel"]
    assert both == pytest.approx(hscore(f, Y[:, 0]) + hscore(f, Y[:, 1]), rel=1e-9)
    copied = multilabel_scores(f, np.hstack([Y, Y[:, :1]]))["hscore_multilabel"]
    assert copied == pytest.approx(both, rel=1e-9)


def test_multilabel_uses_rows_labelled_for_every_attribute_and_drops_one_class_attributes():
    f, Y = attributes(n=60)
    Y[:5, 1] = -1
    Y[:, 2] = np.where(np.arange(60) < 5, 0, 1)   # two classes overall, one on the rows labelled for all: dropped
    got = multilabel_scores(f, Y)
    ok = np.arange(60) >= 5
    want = multilabel_scores(f[ok], Y[ok][:, :2])
    assert got == pytest.approx(want, rel=1e-12)
    assert all(np.isnan(v) for v in multilabel_scores(f, np.ones((60, 2), int)).values())
    with pytest.raises(ValueError, match="two classes each"):
        multilabel_scores(f, np.stack([Y[:, 0], np.arange(60) % 3], 1))
